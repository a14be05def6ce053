#!/bin/bash
# test_ccc: CCC per-user usage and service status changes in the real
# collectd: figures equal the simulator's, status changes added at run time
# move the counters by exactly that many, and a restart with a StateFile
# (clean, after kill -9, and with a corrupt file) neither loses nor
# double-counts. An upstream that hangs, or answers 503 with a Retry-After
# longer than the scrape's deadline, turns the source down within about
# Interval + ScrapeTimeout, and it recovers.
. "$(dirname "$0")/lib.sh"

it_setup ccc
# more threads than the hanging requests below hold at a time
it_start_sim --ccc-services 3 --ccc-users 6 --ccc-status-changes 60 --seed 21 \
  --threads 16
CHECK="$top_srcdir/tests/integration/check_ccc_more.py"

curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c '
import json, sys
print("  <CCC \"acme\">")
print("    URL \"%s\"" % sys.argv[1])
print("    BearerToken \"ccc-token-SECRET\"")
print("    Interval 1")
print("    ScrapeTimeout 3")
print("    StatusChanges true")
print("    StatusChangesLookback 15552000")
print("    StatusChangesPageSize 7")
print("    StateFile \"%s/ccc.state\"" % sys.argv[2])
print("    MaxConcurrentRequests 4")
for s in json.load(sys.stdin):
    print("    <Service \"%s\">" % s["serviceGuid"])
    for u in s["userGuids"]:
        print("      UserGuid \"%s\"" % u)
    print("    </Service>")
print("  </CCC>")' "$SIM_URL" "$IT_DIR" >"$IT_DIR/usage.conf"
it_start_collectd "$IT_DIR/usage.conf"
svc=$(curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["serviceGuid"])')
sel_te="usage_ccc_status_changes_total{source=\"acme\",service=\"$svc\",status=\"TrialExpired\"}"

it_assert "status-change counters appear" it_wait_metric "$sel_te"
it_assert "source up" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1
it_metrics
it_assert "every user figure equals the simulator's (never-logged-in users have no timestamp)" \
  python3 "$CHECK" users "$SIM_URL" "$IT_DIR/last.prom" acme "$IT_DIR/users.json"
it_assert "status-change counters equal the simulator's history (paged by 7)" \
  python3 "$CHECK" changes "$SIM_URL" "$IT_DIR/last.prom" acme
it_assert "promtool check metrics is clean" it_promtool_check
sleep 1.5
it_metrics
it_assert "collectd (csv) carries the same figures" \
  python3 "$top_srcdir/tests/integration/check_collectd.py" "$IT_DIR/last.prom" "$IT_DIR/csv" acme usage_ccc_

# New changes at run time move the counter by exactly that many.
before=$(it_value "$sel_te")
curl -sf -X POST "$SIM_URL/_sim/ccc/status-changes?service=$svc&status=TrialExpired&count=3" >/dev/null
it_assert "3 new status changes: counter +3" it_wait_value "$sel_te" $((before + 3))
sleep 2.5
it_assert_eq "still +3 after more scrapes (no double counting at the boundary)" \
  $((before + 3)) "$(it_value "$sel_te")"
it_assert_eq "the state set follows the newest change" 1 \
  "$(it_value "usage_ccc_service_status{source=\"acme\",service=\"$svc\",status=\"TrialExpired\"}")"
it_metrics
it_assert "all counters equal the simulator's after the additions" \
  python3 "$CHECK" changes "$SIM_URL" "$IT_DIR/last.prom" acme

# A clean restart with the state file.
it_metrics && cp "$IT_DIR/last.prom" "$IT_DIR/before-restart.prom"
it_stop_collectd
it_start_collectd "$IT_DIR/usage.conf"
it_assert "after a restart the counter is unchanged" it_wait_value "$sel_te" $((before + 3))
it_assert "the state was loaded" grep -q 'state loaded from' "$IT_DIR/collectd.log"

# kill -9, changes while collectd is down, restart.
it_kill_collectd
curl -sf -X POST "$SIM_URL/_sim/ccc/status-changes?service=$svc&status=TrialExpired&count=2" >/dev/null
it_start_collectd "$IT_DIR/usage.conf"
it_assert "after kill -9 and 2 changes while down: counter +5 in all" \
  it_wait_value "$sel_te" $((before + 5))
sleep 2
it_metrics
it_assert "all counters equal the simulator's after kill -9" \
  python3 "$CHECK" changes "$SIM_URL" "$IT_DIR/last.prom" acme

# A corrupt state file is reported and set aside; counting restarts from
# the lookback window (which here covers the whole history).
it_stop_collectd
echo "garbage, not a state file" >"$IT_DIR/ccc.state"
it_start_collectd "$IT_DIR/usage.conf"
it_assert "after a corrupt state file the counter is recounted" \
  it_wait_value "$sel_te" $((before + 5))
it_assert "the corrupt state file is reported" \
  grep -q 'state file ".*ccc.state" is not a usage plugin state file; moved to' "$IT_DIR/collectd.log"
it_assert "the corrupt state file was set aside" sh -c "ls '$IT_DIR'/ccc.state.corrupt-* >/dev/null"

# One user failing does not take the others' figures with it.
user=$(curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["userGuids"][1])')
curl -sf -X POST "$SIM_URL/_sim/fault?path=/api/services/$svc/users/$user/usage&mode=http500&count=0" >/dev/null
it_assert "a failing user turns the source down" \
  it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 0
it_metrics
it_assert "the other users' figures stay complete and right" \
  python3 "$CHECK" users "$SIM_URL" "$IT_DIR/last.prom" acme "$IT_DIR/users.json"
it_assert "the log names the failing user" \
  grep -q "service $svc user $user: GET .*: HTTP 500" "$IT_DIR/collectd.log"
curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null

# The scrape's deadline (ScrapeTimeout 3, Interval 1): a scrape never
# outlasts its deadline, so an outage shows as down within Interval +
# ScrapeTimeout (4 s; up to 20 s allowed for a busy machine, where the
# polling itself is slow, against never or more than 60 s before), and the
# next scrapes run on schedule, so the source is up again as soon after the
# upstream is.
up='usage_source_up{source="acme",kind="ccc"}'
backoff='usage_source_backoff_seconds{source="acme",kind="ccc"}'
reason() { it_value "usage_scrape_errors_total{source=\"acme\",reason=\"$1\"}"; }
within() { python3 -c 'import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]))' "$@"; }
# time_to T0 SEL VALUE LIMIT: polls /metrics every 0.1 s from one process
# (so that the measure holds on a busy machine) until SEL has VALUE, at
# most LIMIT seconds after T0 (Unix seconds, taken before the fault was
# armed: arming may wait for a simulator thread); prints the seconds since
# T0, fails on the limit
time_to() {
  python3 - "$METRICS_URL" "$@" "$(dirname "$PROM_PY")" <<'PY'
import sys, time, urllib.request
url, t0, sel, want, limit, where = sys.argv[1:7]
sys.path.insert(0, where)
import prom
name, labels = prom.parse_selector(sel)
t0 = float(t0)
while time.time() - t0 < float(limit):
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        if any(n == name and l == labels and v == float(want)
               for n, l, v in prom.samples(text)):
            print("%.2f" % (time.time() - t0))
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
print("%.2f" % (time.time() - t0))
sys.exit(1)
PY
}
# outage QUERY WHAT: arms the fault QUERY for every CCC request; the source
# must be down within 20 s. recovery WHAT: clears it; the source must be up
# again as soon.
outage() {
  local t0 took
  t0=$(date +%s.%N)
  curl -sf -X POST "$SIM_URL/_sim/fault?path=/api/&$1&count=0" >/dev/null
  took=$(time_to "$t0" "$up" 0 30)
  it_assert "$2 turns the source down (after $took s)" within "$took" 20
}
recovery() {
  local t0 took
  t0=$(date +%s.%N)
  curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null
  took=$(time_to "$t0" "$up" 1 30)
  it_assert "$1 (after $took s)" within "$took" 20
}
it_assert "up again once the user answers" it_wait_value "$up" 1 20
it_assert_eq "healthy: no backoff" 0 "$(it_value "$backoff")"
deadlines=$(reason deadline)
# 5 s: past the deadline, short of Timeout (10 s), so that only the
# deadline can turn the source down (and the simulator's threads that
# sleep are free again soon)
outage "mode=slow&delay=5000" "an upstream that hangs"
it_assert "the scrape ended at its deadline, not after Timeout (10 s) per request" \
  within "$(it_value 'usage_scrape_duration_seconds{source="acme"}')" 4.5
it_assert "counted under the reason deadline" within $((deadlines + 1)) "$(reason deadline)"
it_assert "one line says how far the scrape got" \
  grep -q 'CCC "acme": the scrape ran out of its deadline (ScrapeTimeout 3 s) after .* request(s) sent, .* answered' \
  "$IT_DIR/collectd.log"
recovery "recovers when the upstream answers again"

errors_5xx=$(reason http_5xx)
outage "mode=http503&retry_after=30" "503 with Retry-After: 30"
it_assert "the server's Retry-After is the source's backoff" it_wait_value "$backoff" 30 10
it_assert "the scrape did not sleep 30 s" \
  within "$(it_value 'usage_scrape_duration_seconds{source="acme"}')" 4.5
it_assert "counted as http_5xx" within $((errors_5xx + 1)) "$(reason http_5xx)"
recovery "recovers at the next scrape, not after the Retry-After"
it_assert_eq "the backoff is reset" 0 "$(it_value "$backoff")"
it_assert "the token never reaches the log" sh -c "! grep -q ccc-token-SECRET '$IT_DIR/collectd.log'"
it_done
