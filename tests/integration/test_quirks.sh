#!/bin/bash
# test_quirks: the real collectd scrapes all three vendors from the
# simulator in quirks mode, where every answer is sent the way real
# deployments send it rather than as the spec pages show it (key casing,
# nulls for 0, numbers as strings and strings as numbers, .NET and
# fractional dates, GUID forms, enums as integers, PascalCase error
# envelopes; see contrib/usage-sim/README.md). Every figure on /metrics and
# on the collectd side equals the simulator's own totals, the three sources
# are up with no parse or invalid_value error, and figures stay exact while
# data moves (the same records and changes come back in other forms).
. "$(dirname "$0")/lib.sh"
# The interpreter itself, not a version manager's wrapper script: lib.sh
# and the checks start Python often.
PY=$(python3 -c 'import sys; print(sys.executable)')
PATH="$(dirname "$PY"):$PATH"

it_setup quirks
# until_secs SECONDS CMD...: run CMD every 0.2 s until it succeeds, for at
# most SECONDS of wall time however long CMD takes; the last attempt's
# output is shown when it never does
until_secs() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >"$IT_DIR/until.out" 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then
      sed 's/^/#   /' "$IT_DIR/until.out" | head -n 20
      return 1
    fi
    sleep 0.2
  done
}
it_start_sim --quirks --seed 11 --ccc-services 3 --ccc-users 4 --ccc-status-changes 40 \
  --billing-records 800 --jasper-devices 80
HERE="$top_srcdir/tests/integration"
MFP=Monthly-Flexible-Pool
BASIC=IoT-Basic-1GB
GROUPBY="customerId siteId productReference usageDirection"

# The configured GUIDs in other forms than the API's: dashed upper case for
# the first service and its users, as sent for the others.
curl -sf "$SIM_URL/_sim/ccc/services" | "$PY" -c '
import json, sys
def dashed(g): return ("%s-%s-%s-%s-%s" % (g[:8], g[8:12], g[12:16], g[16:20], g[20:])).upper()
print("  <CCC \"ccc\">")
print("    URL \"%s\"" % sys.argv[1])
print("    BearerToken \"ccc-token-SECRET\"")
print("    Interval 1")
print("    StatusChanges true")
print("    StatusChangesLookback 15552000")
print("    StatusChangesPageSize 7")
print("    StateFile \"%s/ccc.state\"" % sys.argv[2])
print("    MaxConcurrentRequests 4")
for i, s in enumerate(json.load(sys.stdin)):
    form = dashed if i == 0 else (lambda g: g)
    print("    <Service \"%s\">" % form(s["serviceGuid"]))
    for u in s["userGuids"]:
        print("      UserGuid \"%s\"" % form(u))
    print("    </Service>")
print("  </CCC>")' "$SIM_URL" "$IT_DIR" >"$IT_DIR/usage.conf"
printf 'sim-billing-token\n' >"$IT_DIR/billing.token"
cat >>"$IT_DIR/usage.conf" <<CONF
  <Billing "billing">
    URL "$SIM_URL"
    BearerTokenFile "$IT_DIR/billing.token"
    PageSize 250
    GroupBy $(printf '"%s" ' $GROUPBY)
    InitialLookback 4320000
    StateFile "$IT_DIR/billing.state"
    Interval 2
    Timeout 5000
  </Billing>
  <Jasper "iot">
    URL "$SIM_URL"
    User "sim-user"
    Password "sim-key"
    RatePlan "$MFP"
    RatePlan "$BASIC"
    RatePlan "Shared-Pool"
    PageSize 25
    PerDevice true
    DispatchPerDevice true
    MaxRequestsPerSecond 50
    Interval 2
    Timeout 5000
  </Jasper>
CONF
it_start_collectd "$IT_DIR/usage.conf"

up() { it_value "usage_source_up{source=\"$1\",kind=\"$2\"}"; }
for sk in "ccc ccc" "billing billing" "iot jasper"; do
  set -- $sk
  it_assert "source $1 is up" it_wait_value "usage_source_up{source=\"$1\",kind=\"$2\"}" 1 30
done

# Every kind of quirk was served (the simulator counts what it applied).
quirks_served() {
  curl -sf "$SIM_URL/_sim/quirks" | "$PY" -c '
import json, sys
q = json.load(sys.stdin)
missing = [k for k, v in q["applied"].items() if v == 0]
print("# %d quirky answers: %s" % (q["answers"], " ".join("%s=%d" % kv for kv in sorted(q["applied"].items()))))
sys.exit(1 if missing or not q["quirks"] else 0)'
}
it_assert "every kind of quirk was served" until_secs 30 quirks_served
quirks_served

ccc_services() { curl -sf "$SIM_URL/_sim/ccc/services" | "$PY" -c 'import json,sys; print(" ".join(s["serviceGuid"] for s in json.load(sys.stdin)))'; }
# check_all: every figure of the three sources equals the simulator's (its
# plain answers for CCC, its totals for Billing and Jasper); one Python
# process for all the checkers.
check_all() {
  it_metrics || return 1
  "$PY" - "$HERE" "$SIM_URL" "$IT_DIR" "$MFP" "$BASIC" $GROUPBY <<'CHECK'
import os, sys, urllib.request, json
here, sim, d, mfp, basic = sys.argv[1:6]
groupby = sys.argv[6:]
sys.path.insert(0, here)
import check_billing, check_ccc, check_ccc_more, check_jasper
prom = os.path.join(d, "last.prom")
snap = os.path.join(d, "services.json")
guids = [s["serviceGuid"] for s in json.load(urllib.request.urlopen(sim + "/_sim/ccc/services"))]
check_ccc.snapshot(sim, snap, guids)
rc = [check_ccc.compare(snap, prom, "ccc"),
      check_ccc_more.users(sim, prom, "ccc"),
      check_ccc_more.changes(sim, prom, "ccc"),
      check_billing.check(sim, prom, "billing", groupby),
      check_jasper.check(sim, prom, "iot", [mfp, basic])]
sys.exit(1 if any(rc) else 0)
CHECK
}
it_assert "every CCC, Billing and Jasper figure equals the simulator's" until_secs 30 check_all
check_all

# no_errors: up, and no parse or invalid_value error in any source
no_errors() {
  it_metrics || return 1
  "$PY" - "$PROM_PY" "$IT_DIR/last.prom" <<'PY'
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import prom
bad = 0
up = {}
for name, labels, value in prom.samples(open(sys.argv[2]).read()):
    if name == "usage_source_up":
        up[labels["source"]] = value
    if name == "usage_scrape_errors_total" and labels.get("reason") in ("parse", "invalid_value") and value:
        print("%s %s: %s" % (labels["source"], labels["reason"], value))
        bad += 1
if up != {"ccc": 1, "billing": 1, "iot": 1}:
    print("usage_source_up: %r" % up)
    bad += 1
sys.exit(1 if bad else 0)
PY
}
it_assert "all up, no parse or invalid_value error" no_errors
reason() { "$PY" "$PROM_PY" value "$IT_DIR/last.prom" "usage_scrape_errors_total{source=\"$1\",reason=\"$2\"}"; }
it_assert "the PascalCase or camelCase ResponseStatus of the Blocked service is a refusal" \
  test "$(reason ccc service_blocked)" -ge 1
it_assert "the Jasper error body (errorCode as string or number) is a refusal" \
  test "$(reason iot rate_plan_shared)" -ge 1
it_assert "promtool check metrics is clean" it_promtool_check

# Data moves while the answers stay quirky: new status changes (the
# overlap brings the earlier ones back in other GUID and date forms), new
# and late billing records (pages overlap the earlier ones, ids now as
# numbers, now as strings), Jasper growth.
svc=$(ccc_services | cut -d' ' -f1)
sel_te="usage_ccc_status_changes_total{source=\"ccc\",service=\"$svc\",status=\"TrialExpired\"}"
before=$(it_value "$sel_te" || echo 0)
curl -sf -X POST "$SIM_URL/_sim/ccc/status-changes?service=$svc&status=TrialExpired&count=3" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=200" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=100&late=1" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/jasper/grow?add=1000" >/dev/null
it_assert "3 new status changes: counter +3" it_wait_value "$sel_te" $((before + 3)) 20
it_assert "after the changes every figure equals the simulator's again" until_secs 30 check_all
# scraped_since T: every source finished a successful scrape that started
# after T (its last success minus its duration)
scraped_since() {
  it_metrics && "$PY" - "$PROM_PY" "$IT_DIR/last.prom" "$1" <<'PY'
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import prom
end, took = {}, {}
for name, labels, value in prom.samples(open(sys.argv[2]).read()):
    if name == "usage_last_success_timestamp_seconds":
        end[labels["source"]] = value
    elif name == "usage_scrape_duration_seconds":
        took[labels["source"]] = value
fresh = [s for s in end if s in took and end[s] - took[s] > float(sys.argv[3])]
sys.exit(0 if sorted(fresh) == ["billing", "ccc", "iot"] else 1)
PY
}
# Scrapes over the same changes and records again, in other forms.
since=$(date +%s.%N)
it_assert "every source scraped again (wait)" until_secs 30 scraped_since "$since"
since=$(date +%s.%N)
it_assert "every source scraped again (wait)" until_secs 30 scraped_since "$since"
it_assert "still exact after more scrapes (nothing counted twice)" check_all
it_assert "still all up, no parse or invalid_value error" no_errors
it_assert "collectd (csv) carries the same figures as /metrics" sh -c "
  for s in ccc:usage_ccc_ billing:usage_billing_ iot:usage_jasper_; do
    '$PY' '$HERE/check_collectd.py' '$IT_DIR/last.prom' '$IT_DIR/csv' \${s%%:*} \${s#*:} || exit 1
  done"
it_assert "no stack trace and no token in the log" \
  sh -c "! grep -q -e SIM-SECRET-STACKTRACE -e ccc-token-SECRET -e sim-billing-token -e sim-key '$IT_DIR/collectd.log'"
it_done
