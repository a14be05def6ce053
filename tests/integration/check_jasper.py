#!/usr/bin/env python3
"""check_jasper.py SIM_URL PROM_FILE SOURCE PLAN...

Every zone figure of each rate PLAN of SOURCE in PROM_FILE (devices, data
bytes, SMS and voice by direction) equals the simulator's totals
(GET /_sim/jasper/totals?ratePlan=PLAN), and so do the sums of the device
series and the number of devices with series in each zone. Prints
mismatches and the number of zone figures compared; exits 1 on any
mismatch or when nothing was compared.
"""
import json
import os
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom  # noqa: E402


def main():
    return check(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])


def check(sim, prom_file, source, plans):
    got, dev, iccids = {}, {}, {}
    for name, labels, value in prom.samples(open(prom_file).read()):
        if labels.get("source") != source or not name.startswith("usage_jasper_"):
            continue
        if name.startswith("usage_jasper_device_"):
            k = (name.replace("device_", "zone_"), labels["rate_plan"], labels["zone"], labels.get("direction"))
            dev[k] = dev.get(k, 0) + value
            iccids.setdefault((labels["rate_plan"], labels["zone"]), set()).add(labels["iccid"])
        else:
            got[(name, labels.get("rate_plan"), labels.get("zone"), labels.get("direction"))] = value
    bad = checked = 0
    for plan in plans:
        url = "%s/_sim/jasper/totals?ratePlan=%s" % (sim, urllib.parse.quote(plan))
        t = json.load(urllib.request.urlopen(url))
        for z in t["zones"]:
            want = {
                ("usage_jasper_zone_devices", plan, z["zone"], None): z["devices"],
                ("usage_jasper_zone_data_bytes_total", plan, z["zone"], None): z["dataUsage"],
                ("usage_jasper_zone_sms_total", plan, z["zone"], "mo"): z["smsMOUsage"],
                ("usage_jasper_zone_sms_total", plan, z["zone"], "mt"): z["smsMTUsage"],
                ("usage_jasper_zone_voice_seconds_total", plan, z["zone"], "mo"): z["voiceMOUsage"],
                ("usage_jasper_zone_voice_seconds_total", plan, z["zone"], "mt"): z["voiceMTUsage"],
            }
            for k, v in want.items():
                checked += 1
                if got.get(k) != v:
                    print("mismatch %s: /metrics %r, simulator %r" % (k, got.get(k), v))
                    bad += 1
                if k[0] != "usage_jasper_zone_devices" and dev.get(k) != v:
                    print("per-device sum %s: %r, simulator %r" % (k, dev.get(k), v))
                    bad += 1
            n = len(iccids.get((plan, z["zone"]), ()))
            if n != z["devices"]:
                print("devices with series in %s/%s: %d, simulator %d" % (plan, z["zone"], n, z["devices"]))
                bad += 1
    print("# %d zone figures compared, %d mismatches" % (checked, bad))
    return 1 if bad or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
