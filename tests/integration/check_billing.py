#!/usr/bin/env python3
"""check_billing.py SIM_URL PROM_FILE SOURCE FIELD...

Every usage_billing_* counter of SOURCE in PROM_FILE (records, data bytes,
duration, sell and buy price) equals the simulator's own sum for its group
(GET /_sim/billing/totals?groupBy=FIELD,...: exact decimals), the GroupBy
FIELDs being the block's GroupBy in the same order; and /metrics has no
billing series the simulator does not know. Prints mismatches and the number
of figures compared; exits 1 on any mismatch or when nothing was compared.
"""
import json
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom  # noqa: E402

FAMILIES = {"records": ("usage_billing_records_total", 1),
            "dataQuantity": ("usage_billing_data_bytes_total", 1e6),
            "durationQuantity": ("usage_billing_duration_seconds_total", 1),
            "sellPrice": ("usage_billing_sell_price_total", 1),
            "buyPrice": ("usage_billing_buy_price_total", 1)}


def label(field):
    return re.sub(r"([A-Z])", r"_\1", field).lower()


def main():
    return check(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])


def check(sim, prom_file, source, fields):
    names = [label(f) for f in fields]
    got = {}
    for name, labels, value in prom.samples(open(prom_file).read()):
        if labels.pop("source", None) != source or name not in [f[0] for f in FAMILIES.values()]:
            continue
        got[(name, tuple(labels.get(n) for n in names))] = value
    url = "%s/_sim/billing/totals?groupBy=%s" % (sim, ",".join(fields))
    want = json.load(urllib.request.urlopen(url))
    bad = compared = 0
    for g in want["groups"]:
        key = tuple(g["labels"][f] for f in fields)
        for field, (fam, scale) in FAMILIES.items():
            w = float(g[field]) * scale
            v = got.pop((fam, key), None)
            compared += 1
            if v is None or abs(v - w) > 1e-9 * max(1.0, abs(w)):
                bad += 1
                if bad <= 10:
                    print("mismatch %s%s: simulator %r, /metrics %r" % (fam, key, w, v))
    for k in sorted(got)[:10]:
        print("on /metrics, unknown to the simulator: %s%s" % k)
    bad += len(got)
    print("# %d billing figures compared (%d records held), %d mismatches"
          % (compared, want["recordsHeld"], bad))
    return 1 if bad or not compared else 0


if __name__ == "__main__":
    sys.exit(main())
