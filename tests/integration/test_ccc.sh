#!/bin/bash
# test_ccc: CCC per-user usage and service status changes in the real
# collectd: figures equal the simulator's, status changes added at run time
# move the counters by exactly that many, and a restart with a StateFile
# (clean, after kill -9, and with a corrupt file) neither loses nor
# double-counts.
. "$(dirname "$0")/lib.sh"

it_setup ccc
it_start_sim --ccc-services 3 --ccc-users 6 --ccc-status-changes 60 --seed 21
CHECK="$top_srcdir/tests/integration/check_ccc_more.py"

curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c '
import json, sys
print("  <CCC \"acme\">")
print("    URL \"%s\"" % sys.argv[1])
print("    BearerToken \"ccc-token-SECRET\"")
print("    Interval 1")
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
it_assert "the token never reaches the log" sh -c "! grep -q ccc-token-SECRET '$IT_DIR/collectd.log'"
it_done
