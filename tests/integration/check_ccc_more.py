#!/usr/bin/env python3
"""check_ccc_more.py users SIM_URL PROM_FILE SOURCE
   check_ccc_more.py users SIM_URL PROM_FILE SOURCE SNAPSHOT
   check_ccc_more.py changes SIM_URL PROM_FILE SOURCE [OUT.json]

users: every usage_ccc_user_* figure of every user the simulator lists
equals its GetServiceUserUsage answer (PeriodType Daily); "never" dates
have no sample.
changes: usage_ccc_status_changes_total{service,status} equals the number
of status changes the simulator holds for the service (all of them: the
test's lookback covers its whole history), and the newest change's time and
state are published. Prints mismatches; exits 1 on any.
"""
import collections
import datetime
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom  # noqa: E402

STATES = ["Blocked", "AccountCancelled", "AccountSuspended", "Provisioning",
          "TrialExpired", "TrialActive", "DemoAccount", "CertifiedSecure"]
FIELDS = [("totalMessagesSent", "usage_ccc_user_messages_sent"),
          ("totalMessagesReceived", "usage_ccc_user_messages_received"),
          ("totalAttachmentsCount", "usage_ccc_user_attachments"),
          ("totalAttachmentsSize", "usage_ccc_user_attachment_bytes"),
          ("totalInvitationsSent", "usage_ccc_user_invitations_sent"),
          ("totalInvitationsAccepted", "usage_ccc_user_invitations_accepted")]


def get(url):
    # X-Sim-Plain: the plain answer, also from a simulator in quirks mode
    with urllib.request.urlopen(urllib.request.Request(url, headers={"X-Sim-Plain": "1"})) as r:
        return json.load(r)


def ts(s):
    if s.startswith("0001-01-01"):
        return None
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def index(prom_file):
    out = {}
    for name, labels, value in prom.samples(open(prom_file).read()):
        out[(name, tuple(sorted(labels.items())))] = value
    return out


def key(name, **labels):
    return (name, tuple(sorted(labels.items())))


def users(sim, prom_file, source, snap=None):
    """With SNAP, the simulator's answers are saved there the first time
    and read back later (while a test injects faults)."""
    if snap and os.path.exists(snap):
        bodies = json.load(open(snap))
    else:
        bodies = {}
        for svc in get(sim + "/_sim/ccc/services"):
            s = svc["serviceGuid"]
            for u in svc["userGuids"]:
                bodies[s + "/" + u] = get("%s/api/services/%s/users/%s/usage?PeriodType=Daily" % (sim, s, u))
        if snap:
            json.dump(bodies, open(snap, "w"))
    idx = index(prom_file)
    bad = n = 0
    for su, body in sorted(bodies.items()):
        s, u = su.split("/")
        if True:
            usage = body["usage"]
            for field, fam in FIELDS:
                k = key(fam, source=source, service=s, user=u, period="daily")
                n += 1
                if idx.get(k) != usage[field]:
                    print("mismatch %s %s %s: want %s got %s" % (fam, s, u, usage[field], idx.get(k)))
                    bad += 1
            for field, fam in [("lastActivity", "usage_ccc_user_last_activity_timestamp_seconds"),
                               ("lastLogin", "usage_ccc_user_last_login_timestamp_seconds")]:
                k = key(fam, source=source, service=s, user=u)
                n += 1
                if idx.get(k) != ts(usage[field]):
                    print("mismatch %s %s %s: want %s got %s" % (fam, s, u, ts(usage[field]), idx.get(k)))
                    bad += 1
            status = {"0": "Active", "1": "Disabled"}.get(usage["status"], usage["status"])
            k = key("usage_ccc_user_info", source=source, service=s, user=u,
                    group=usage["groupName"], group_type=usage["groupType"], status=status)
            n += 1
            if idx.get(k) != 1:
                print("missing user_info %s" % (k,))
                bad += 1
    print("%d user figures compared, %d mismatches" % (n, bad))
    return 1 if bad or n == 0 else 0


def changes(sim, prom_file, source, out=None):
    idx = index(prom_file)
    bad = n = 0
    snapshot = {}
    for svc in get(sim + "/_sim/ccc/services"):
        s = svc["serviceGuid"]
        page = get("%s/api/services/status?ServiceGuid=%s&PageSize=1000&Page=1" % (sim, s))
        counts = collections.Counter(r["status"] for r in page["results"])
        newest = max(page["results"], key=lambda r: r["changedOn"]) if page["results"] else None
        for st in STATES:
            k = key("usage_ccc_status_changes_total", source=source, service=s, status=st)
            n += 1
            snapshot["%s/%s" % (s, st)] = idx.get(k)
            if idx.get(k) != counts.get(st, 0):
                print("mismatch changes %s %s: want %s got %s" % (s, st, counts.get(st, 0), idx.get(k)))
                bad += 1
        if newest:
            k = key("usage_ccc_service_last_status_change_timestamp_seconds", source=source, service=s)
            n += 1
            if idx.get(k) != ts(newest["changedOn"]):
                print("mismatch last change %s: want %s got %s" % (s, ts(newest["changedOn"]), idx.get(k)))
                bad += 1
            k = key("usage_ccc_service_status", source=source, service=s, status=newest["status"])
            n += 1
            if idx.get(k) != 1:
                print("mismatch status %s: want %s=1 got %s" % (s, newest["status"], idx.get(k)))
                bad += 1
    if out:
        json.dump(snapshot, open(out, "w"))
    print("%d status-change figures compared, %d mismatches" % (n, bad))
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    op = sys.argv[1]
    if op == "users":
        sys.exit(users(*sys.argv[2:6]))
    sys.exit(changes(*sys.argv[2:6]))
