#!/bin/bash
# test_jasper: the real collectd scrapes Jasper Get Usage by Rate Plan from
# the simulator with the default politeness limits (5 requests a second,
# one in flight). Zone and device figures on /metrics and on the collectd
# side equal the simulator's totals; growth moves the counters by exactly
# the growth; a new billing cycle is published as a counter reset; shared,
# ambiguous and unknown rate plans are documented refusals; error bodies in
# ISO-8859-1 or HTML are reported, not fatal; the simulator's request log
# shows at most 5 requests in any second and never two in flight; while
# the device list moves between pages (the simulator's jasper-shift), zone
# counters never go down and come back to the simulator's totals.
. "$(dirname "$0")/lib.sh"

it_setup jasper
it_start_sim --jasper-devices 120 --seed 5 --request-log "$IT_DIR/requests.log"

KEY="key-$RANDOM-SECRET"
curl -sf -X POST "$SIM_URL/_sim/jasper/credentials?user=sim-user&key=$KEY" >/dev/null
printf '%s\n' "$KEY" >"$IT_DIR/jasper.key"
MFP=Monthly-Flexible-Pool
BASIC=IoT-Basic-1GB
cat >"$IT_DIR/usage.conf" <<CONF
  <Jasper "iot">
    URL "$SIM_URL"
    User "sim-user"
    PasswordFile "$IT_DIR/jasper.key"
    RatePlan "$MFP"
    RatePlan "$BASIC"
    RatePlan "Shared-Pool"
    RatePlan "Duplicate-Plan"
    RatePlan "No-Such-Plan"
    PerDevice true
    DispatchPerDevice true
    Interval 3
    Timeout 5000
  </Jasper>
CONF
it_start_collectd "$IT_DIR/usage.conf"

it_assert "zone figures appear" \
  it_wait_metric "usage_jasper_zone_devices{source=\"iot\",rate_plan=\"$MFP\",zone=\"Zone A\"}" 20
# the source's own figures are committed at the end of the scrape
it_assert "usage_source_up appears" it_wait_metric 'usage_source_up{source="iot",kind="jasper"}' 20
it_assert_eq "source up (shared, ambiguous, unknown are refusals)" 1 \
  "$(it_value 'usage_source_up{source="iot",kind="jasper"}')"
for r in rate_plan_shared rate_plan_ambiguous rate_plan_unknown; do
  it_assert "refusal counted: $r" sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/last.prom' 'usage_scrape_errors_total{source=\"iot\",reason=\"$r\"}')\" -ge 1 ]"
done
it_assert "the ambiguity hint is logged" grep -q 'RatePlan \\"NAME\\" 2\|RatePlan "NAME" 2' "$IT_DIR/collectd.log"
it_assert "the rate plan info carries the account" \
  sh -c "grep -q 'usage_jasper_rate_plan_info{source=\"iot\",rate_plan=\"$MFP\",version=\"[0-9]*\",account_id=\"[0-9]*\",account_name=\"Acme Corp\"} 1' '$IT_DIR/last.prom'"

# compare_sim FILE PLAN...: every zone figure and the per-device sums
# equal the simulator's totals.
compare_sim() {
  python3 "$top_srcdir/tests/integration/check_jasper.py" "$SIM_URL" "$1" iot "${@:2}"
}

it_metrics
it_assert "zone and device figures equal the simulator's" compare_sim "$IT_DIR/last.prom" "$MFP" "$BASIC"
it_assert "devices_omitted is 0" sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/last.prom' 'usage_jasper_devices_omitted{source=\"iot\",rate_plan=\"$MFP\"}')\" = 0 ]"
it_assert "promtool check metrics is clean" it_promtool_check

# The collectd side carries the same figures (one more interval so the csv
# files hold the same scrape; the data does not change meanwhile).
sleep 4
it_metrics
it_assert "collectd (csv) carries the same figures as /metrics" \
  python3 "$top_srcdir/tests/integration/check_collectd.py" "$IT_DIR/last.prom" "$IT_DIR/csv" iot usage_jasper_

# Growth: every non-idle device-zone gets 1000 more bytes.
SEL="usage_jasper_zone_data_bytes_total{source=\"iot\",rate_plan=\"$MFP\",zone=\"Zone A\"}"
SEL2="usage_jasper_zone_data_bytes_total{source=\"iot\",rate_plan=\"$BASIC\",zone=\"Zone A\"}"
sim_zone_a() {
  curl -sf "$SIM_URL/_sim/jasper/totals?ratePlan=$1" |
    python3 -c 'import json,sys; print([z for z in json.load(sys.stdin)["zones"] if z["zone"]=="Zone A"][0]["dataUsage"])'
}
before=$(it_value "$SEL")
sim_before=$(sim_zone_a "$MFP")
curl -sf -X POST "$SIM_URL/_sim/jasper/grow?add=1000" >/dev/null
sim_after=$(sim_zone_a "$MFP")
it_assert "growth reaches /metrics" it_wait_value "$SEL" "$sim_after" 20
it_assert "growth reaches /metrics (second plan)" it_wait_value "$SEL2" "$(sim_zone_a "$BASIC")" 20
after=$(it_value "$SEL")
it_assert_eq "the counter moved by exactly the growth" "$((sim_after - sim_before))" "$((after - before))"
it_assert "growth: every figure equals the simulator's" compare_sim "$IT_DIR/last.prom" "$MFP" "$BASIC"

# A new billing cycle: values restart low, published as a counter reset.
curl -sf -X POST "$SIM_URL/_sim/jasper/reset-cycle" >/dev/null
sim_reset=$(sim_zone_a "$MFP")
it_assert "the reset reaches /metrics" it_wait_value "$SEL" "$sim_reset" 20
it_assert "the reset reaches /metrics (second plan)" it_wait_value "$SEL2" "$(sim_zone_a "$BASIC")" 20
it_assert "the counter dropped (a counter reset for rate())" test "$sim_reset" -lt "$after"
it_assert "reset: every figure equals the simulator's" compare_sim "$IT_DIR/last.prom" "$MFP" "$BASIC"
it_assert_eq "still up after the reset" 1 "$(it_value 'usage_source_up{source="iot",kind="jasper"}')"
# On the collectd side the DERIVE values drop too (csv stores them raw).
sleep 4
it_metrics
it_assert "reset: collectd (csv) carries the same, lower figures" \
  python3 "$top_srcdir/tests/integration/check_collectd.py" "$IT_DIR/last.prom" "$IT_DIR/csv" iot usage_jasper_

# Error bodies that are not UTF-8 JSON or not JSON at all. A fault hits
# the next request; arm it right after a scrape ended, so that it hits the
# first page of the first rate plan (whose failure is logged, not
# throttled: the refused plans fail every scrape). A 5xx answer is retried
# twice, so a 5xx fault hits three requests.
arm_after_scrape() {
  it_until 10 sh -c "tail -n 1 '$IT_DIR/requests.log' | grep -q No-Such-Plan" &&
    curl -sf -X POST "$SIM_URL/_sim/fault?path=/rws/&mode=$1&count=${2:-1}" >/dev/null
}
it_assert "armed an ISO-8859-1 error body" arm_after_scrape latin1
it_assert "the ISO-8859-1 error body is reported with its code" \
  it_until 20 grep -q "rate plan \"$MFP\".*HTTP 400, errorCode 30000001 (\"Erreur inconnue du serveur: caract?re ?\")" "$IT_DIR/collectd.log"
it_assert "figures come back after the first fault" \
  it_until 20 grep -q "rate plan \"$MFP\": working again" "$IT_DIR/collectd.log"
it_assert "armed an HTML error page" arm_after_scrape html 3
it_assert "the HTML error page is reported with its status and content type" \
  it_until 20 grep -q "rate plan \"$MFP\".*HTTP 502 with a text/html; charset=utf-8 body of [0-9]* bytes and no error code" "$IT_DIR/collectd.log"
it_assert "collectd is still running" kill -0 "$COLLECTD_PID"
it_assert "figures come back after the faults" it_wait_value 'usage_source_up{source="iot",kind="jasper"}' 1 20
it_assert "the API key never reaches the log" sh -c "! grep -q '$KEY' '$IT_DIR/collectd.log'"

it_stop_collectd

# Politeness, from the simulator's request log: at most 5 request starts in
# any 1-second window, and never two requests in flight.
it_assert "at most 5 requests in any second, never two in flight" \
  python3 - "$IT_DIR/requests.log" <<'PY'
import sys
reqs = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 4 and "/rws/" in f[3]:
        reqs.append((float(f[0]), float(f[1])))
reqs.sort()
worst = 0
j = 0
for i in range(len(reqs)):
    while reqs[i][0] - reqs[j][0] >= 1.0:
        j += 1
    worst = max(worst, i - j + 1)
overlap = sum(1 for a, b in zip(reqs, reqs[1:]) if b[0] < a[1])
print("# %d requests, at most %d in one second, %d overlapping" % (len(reqs), worst, overlap))
sys.exit(0 if reqs and worst <= 5 and overlap == 0 else 1)
PY

# jasper-shift: the device list moves between the pages of one rate plan
# (a device skipped, another listed twice). In a known billing cycle the
# published zone counters never go down, and once the shift is off they
# equal the simulator's totals again. This block leaves DispatchPerDevice
# at its default: with an exporter, the device series reach /metrics only,
# the zone series collectd too.
mv "$IT_DIR/csv" "$IT_DIR/csv-first" && mkdir "$IT_DIR/csv"
CYCLE=$(curl -sf -X POST "$SIM_URL/_sim/jasper/reset-cycle" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["cycleStartDate"])')
cat >"$IT_DIR/shift.conf" <<CONF
  <Jasper "iot">
    URL "$SIM_URL"
    User "sim-user"
    PasswordFile "$IT_DIR/jasper.key"
    RatePlan "$MFP"
    CycleStartDate "$CYCLE"
    PageSize 10
    PerDevice true
    MaxRequestsPerSecond 0
    Interval 1
    Timeout 5000
  </Jasper>
CONF
it_start_collectd "$IT_DIR/shift.conf"
fresh_compare() { it_metrics && compare_sim "$IT_DIR/last.prom" "$@"; }
it_assert "shift off: figures equal the simulator's" it_until 20 fresh_compare "$MFP"
cp "$IT_DIR/last.prom" "$IT_DIR/shift-0.prom"
it_assert "default DispatchPerDevice: the start-up line says where device series go" \
  grep -q 'Jasper "iot": the per-device series go to the exporter only' "$IT_DIR/collectd.log"
it_assert "default DispatchPerDevice: device series on /metrics" \
  grep -q "^usage_jasper_device_data_bytes_total{" "$IT_DIR/shift-0.prom"
zone_csv() { ls "$IT_DIR"/csv/*/usage-iot/total_bytes-jasper_zone_data_bytes-* >/dev/null 2>&1; }
it_assert "default DispatchPerDevice: zone series reach collectd" it_until 20 zone_csv
it_assert "default DispatchPerDevice: zone figures in collectd equal /metrics" \
  it_until 20 sh -c "curl -sf '$METRICS_URL' -o '$IT_DIR/zone.prom' && python3 '$top_srcdir/tests/integration/check_collectd.py' '$IT_DIR/zone.prom' '$IT_DIR/csv' iot usage_jasper_zone_"
it_assert "default DispatchPerDevice: no device series in collectd" \
  sh -c "! ls '$IT_DIR'/csv/*/usage-iot/ | grep -q jasper_device_"
curl -sf -X POST "$SIM_URL/_sim/jasper/shift?on=1" >/dev/null
for i in 1 2 3 4 5 6 7 8; do
  sleep 1
  it_metrics && cp "$IT_DIR/last.prom" "$IT_DIR/shift-$i.prom"
done
shifted=$(curl -sf -X POST "$SIM_URL/_sim/jasper/shift?on=0" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["shiftedPages"])')
it_assert "the simulator shifted pages" test "${shifted:-0}" -gt 0
it_assert "shift on: a lower sum was held at least once" \
  sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/shift-8.prom' 'usage_scrape_errors_total{source=\"iot\",reason=\"decrease_held\"}')\" -ge 1 ]"
it_assert "shift off again: figures equal the simulator's" it_until 20 fresh_compare "$MFP"
cp "$IT_DIR/last.prom" "$IT_DIR/shift-9.prom"
it_assert "the zone counters never went down" \
  python3 - "$PROM_PY" "$IT_DIR" <<'PY'
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import prom
last = {}
bad = 0
for i in range(0, 10):
    text = open(os.path.join(sys.argv[2], "shift-%d.prom" % i)).read()
    for name, labels, value in prom.samples(text):
        if labels.get("source") != "iot" or not name.startswith("usage_jasper_zone_") or not name.endswith("_total"):
            continue
        key = (name, labels.get("zone"), labels.get("direction"))
        if key in last and value < last[key]:
            print("%s went down: %r -> %r (sample %d)" % (key, last[key], value, i))
            bad += 1
        last[key] = value
print("# %d zone counters followed over 10 samples" % len(last))
sys.exit(1 if bad or not last else 0)
PY
it_stop_collectd

it_done
