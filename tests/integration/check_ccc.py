#!/usr/bin/env python3
"""check_ccc.py snapshot SIM_URL SNAPSHOT GUID...
   check_ccc.py compare SNAPSHOT PROM_FILE SOURCE

snapshot saves what the simulator serves for each service (taken before a
test injects faults); compare checks an exposition against it.

Compares the usage_ccc_service_* figures of an exposition with what the
simulator serves for each service (GetServiceUsage), field by field. Prints
one line per mismatch and exits 1 when there is any; prints the number of
figures compared otherwise. Services the API refuses (Blocked,
Provisioning) are checked for their status set only.
"""
import json
import os
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prom  # noqa: E402
FIELDS = [
    ("totalUserCount", "usage_ccc_service_users", None),
    ("proUserCount", "usage_ccc_service_pro_users", None),
    ("guestUserCount", "usage_ccc_service_guest_users", None),
    ("disabledUserCount", "usage_ccc_service_disabled_users", None),
    ("unregisteredUserCount", "usage_ccc_service_unregistered_users", None),
    ("featureUsageSecureMessagingGateway", "usage_ccc_service_feature_usage", "secure_messaging_gateway"),
    ("featureUsageSecureMessagingPlus", "usage_ccc_service_feature_usage", "secure_messaging_plus"),
    ("featureUsageDataLeakPrevention", "usage_ccc_service_feature_usage", "data_leak_prevention"),
    ("featureUsageSecureLargeFiles", "usage_ccc_service_feature_usage", "secure_large_files"),
    ("featureUsageSecureForms", "usage_ccc_service_feature_usage", "secure_forms"),
    ("totalMessageCount", "usage_ccc_service_messages", None),
    ("totalAttachmentCount", "usage_ccc_service_attachments", None),
    ("attachmentStorageUsage", "usage_ccc_service_attachment_storage_bytes", None),
]
STATES = ["Blocked", "AccountCancelled", "AccountSuspended", "Provisioning",
          "TrialExpired", "TrialActive", "DemoAccount", "CertifiedSecure"]


_INDEX = {}


def value(prom_file, sel):
    """The sample's value as `prom.py value` prints it, or None."""
    if prom_file not in _INDEX:
        _INDEX[prom_file] = {(n, tuple(sorted(l.items()))): v
                             for n, l, v in prom.samples(open(prom_file).read())}
    name, labels = prom.parse_selector(sel)
    v = _INDEX[prom_file].get((name, tuple(sorted(labels.items()))))
    if v is None:
        return None
    return repr(int(v)) if v == int(v) and abs(v) < 2**53 else repr(v)


def esc(s):
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def snapshot(sim, out, guids):
    snap = {}
    for guid in guids:
        try:
            # X-Sim-Plain: the plain answer, also from a simulator in quirks mode
            req = urllib.request.Request("%s/api/services/%s/serviceusage" % (sim, guid),
                                         headers={"X-Sim-Plain": "1"})
            with urllib.request.urlopen(req) as r:
                body = json.load(r)
            snap[guid] = {"status": body["status"], "body": body}
        except urllib.error.HTTPError as e:
            err = json.load(e)["responseStatus"]["errorCode"]
            status = {"ServiceBlocked": "Blocked", "ServiceProvisioning": "Provisioning"}[err]
            snap[guid] = {"status": status, "body": None}
    json.dump(snap, open(out, "w"))
    return 0


def main():
    if sys.argv[1] == "snapshot":
        return snapshot(sys.argv[2], sys.argv[3], sys.argv[4:])
    return compare(*sys.argv[2:5])


def compare(snap_file, prom, source):
    snap = json.load(open(snap_file))
    bad = 0
    compared = 0
    for guid, entry in snap.items():
        body, status = entry["body"], entry["status"]
        base = 'source="%s",service="%s"' % (source, guid)
        for st in STATES:
            want = "1" if st == status else "0"
            got = value(prom, 'usage_ccc_service_status{%s,status="%s"}' % (base, st))
            compared += 1
            if got != want:
                print("mismatch: %s status %s: want %s got %s" % (guid, st, want, got))
                bad += 1
        if body is None:
            continue
        for field, family, feature in FIELDS:
            sel = family + "{" + base + (',feature="%s"' % feature if feature else "") + "}"
            got = value(prom, sel)
            compared += 1
            if got != str(body[field]):
                print("mismatch: %s: want %s got %s" % (sel, body[field], got))
                bad += 1
        sel = 'usage_ccc_service_info{%s,name="%s",code="%s",primary_domain="%s"}' % (
            base, esc(body["name"]), esc(body["serviceCode"]), esc(body["primaryDomain"]))
        compared += 1
        if value(prom, sel) != "1":
            print("missing: " + sel)
            bad += 1
    print("%d figures compared, %d mismatches" % (compared, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
