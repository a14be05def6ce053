#!/bin/bash
# test_stop: collectd stops within 2 s of SIGTERM in the middle of a scrape.
# The real collectd scrapes the simulator: (1) a Jasper rate plan of 2,000
# pages at the default 5 requests a second, stopped after some pages;
# (2) the same with a page in flight that the simulator holds for a
# minute; (3) a CCC and a Billing block, both inside a 25 s Retry-After
# sleep after a 503. Each time the time from the signal to the end of the
# process is measured and printed. Nothing of a stopped scrape is
# published, no error is logged for it, the Billing StateFile is left as
# the last complete scrape wrote it, and the next start counts the records
# the stopped scrape had not finished exactly once.
. "$(dirname "$0")/lib.sh"

it_setup stop
it_start_sim --jasper-devices 100000 --jasper-rate-plans 1 --ccc-services 1 \
  --ccc-users 1 --billing-records 300 --seed 11
MFP=Monthly-Flexible-Pool
LIMIT=2.0

# stop_timed: SIGTERM to collectd; prints the seconds until the process is
# gone (polled every 10 ms, 10 s at most: "timeout" then, and stop_within
# kills it).
stop_timed() {
  python3 - "$COLLECTD_PID" <<'PY'
import os, signal, sys, time
pid = int(sys.argv[1])
def alive():
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
t0 = time.monotonic()
os.kill(pid, signal.SIGTERM)
while alive() and time.monotonic() - t0 < 10:
    time.sleep(0.01)
print("timeout" if alive() else "%.3f" % (time.monotonic() - t0))
PY
}

# stop_within CASE: stop collectd, print the figure, assert it.
stop_within() {
  local secs
  secs=$(stop_timed)
  it_log "$1: collectd gone $secs s after SIGTERM"
  it_assert "$1: collectd exits within $LIMIT s of SIGTERM ($secs s)" \
    awk -v s="$secs" -v l="$LIMIT" 'BEGIN { exit !(s != "timeout" && s + 0 < l + 0) }'
  [ "$secs" = timeout ] && kill -KILL "$COLLECTD_PID" 2>/dev/null
  wait "$COLLECTD_PID" 2>/dev/null
  COLLECTD_PID=
}

# sim_json EXPR PATH: a figure from a simulator control answer.
sim_json() {
  curl -sf "$SIM_URL$2" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}
jasper_requests() { sim_json 'd["endpoints"]["jasper"]["count"]' /_sim/requests; }
fault_hits() { sim_json 'sum(f["hits"] for f in d)' /_sim/fault; }
at_least() { [ "$("$1")" -ge "$2" ] 2>/dev/null; }

# no_errors: collectd logged no error since it started (a stopped scrape
# is not a failure).
no_errors() { ! grep -q '\[error\]' "$IT_DIR/collectd.log"; }
stop_noted() { grep -q "$1.*stopped [0-9.]* s into a scrape" "$IT_DIR/collectd.log"; }

cat >"$IT_DIR/jasper.conf" <<CONF
  <Jasper "iot">
    URL "$SIM_URL"
    User "sim-user"
    Password "sim-key"
    RatePlan "$MFP"
    Interval 900
    Timeout 120000
  </Jasper>
CONF

# 1. A 2,000-page scrape under way (mostly waiting between requests).
it_start_collectd "$IT_DIR/jasper.conf"
it_assert "jasper: the scrape is under way (10 pages asked for)" \
  it_until 30 at_least jasper_requests 10
it_metrics
it_assert_eq "jasper: no zone figure on /metrics mid-scrape" 0 \
  "$(grep -c '^usage_jasper_zone' "$IT_DIR/last.prom")"
pages=$(jasper_requests)
stop_within "2,000-page Jasper scrape ($pages pages asked for)"
it_assert "jasper: the stop is logged" stop_noted 'Jasper "iot"'
it_assert "jasper: no error logged for the stopped scrape" no_errors
it_assert_eq "jasper: no zone figure reached collectd (csv)" "" \
  "$(ls "$IT_DIR"/csv/*/usage-iot/ 2>/dev/null | grep jasper_zone)"

# 2. The same with a page in flight that the simulator holds for 60 s.
: >"$IT_DIR/collectd.log"
it_start_collectd "$IT_DIR/jasper.conf"
base=$(jasper_requests)
it_assert "jasper: the scrape is under way again" \
  it_until 30 at_least jasper_requests $((base + 3))
curl -sf -X POST "$SIM_URL/_sim/fault?path=/rws/&mode=slow&delay=60000&count=0" >/dev/null
it_assert "jasper: a page is held by the simulator" it_until 30 at_least fault_hits 1
stop_within "Jasper page in flight (held 60 s)"
it_assert "jasper in flight: the stop is logged" stop_noted 'Jasper "iot"'
it_assert "jasper in flight: no error logged" no_errors
curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null

# 3. CCC and Billing inside a Retry-After sleep (503, Retry-After: 25).
svc=$(sim_json 'd[0]["serviceGuid"]' /_sim/ccc/services)
cat >"$IT_DIR/sleep.conf" <<CONF
  <CCC "acme">
    URL "$SIM_URL"
    BearerToken "ccc-token"
    <Service "$svc">
    </Service>
    Interval 1
    ScrapeTimeout 60
  </CCC>
  <Billing "bill">
    URL "$SIM_URL"
    BearerToken "sim-billing-token"
    GroupBy "customerId"
    StateFile "$IT_DIR/bill.state"
    Interval 1
    ScrapeTimeout 60
  </Billing>
CONF
: >"$IT_DIR/collectd.log"
it_start_collectd "$IT_DIR/sleep.conf"
records() { it_sum 'usage_billing_records_total{source="bill"}'; }
records_are() { [ "$(records)" = "$1" ]; }
it_assert "billing: the first scrape is published" \
  it_wait_metric 'usage_source_up{source="bill",kind="billing"}' 30
it_assert "ccc: the service is scraped" \
  it_wait_metric "usage_ccc_service_users{source=\"acme\",service=\"$svc\"}" 30
before=$(records)
it_assert "billing: records counted ($before)" test "${before:-0}" -gt 0
curl -sf -X POST "$SIM_URL/_sim/fault?path=/customer-usage-data&mode=http503&retry_after=25&count=0" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/fault?path=/api/services/&mode=http503&retry_after=25&count=0" >/dev/null
both_hit() {
  [ "$(sim_json 'min(f["hits"] for f in d)' /_sim/fault)" -ge 1 ] 2>/dev/null
}
it_assert "both blocks got their 503 (Retry-After: 25)" it_until 30 both_hit
state_sum=$(sha256sum <"$IT_DIR/bill.state")
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=40" >/dev/null
stop_within "CCC and Billing in a 25 s Retry-After sleep"
it_assert "ccc: the stop is logged" stop_noted 'CCC "acme"'
it_assert "billing: the stop is logged" stop_noted 'Billing "bill"'
it_assert "retry-after: no error logged" no_errors
it_assert_eq "billing: the StateFile is the last complete scrape's" \
  "$state_sum" "$(sha256sum <"$IT_DIR/bill.state")"

# The next start counts the 40 records the stopped scrape had not
# finished, once.
curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null
it_start_collectd "$IT_DIR/sleep.conf"
it_assert "billing: after a restart the 40 new records are counted" \
  it_until 30 records_are $((before + 40))
billing_requests() { sim_json 'd["endpoints"]["billing"]["count"]' /_sim/requests; }
n=$(billing_requests)
it_assert "billing: two more scrapes ran" it_until 30 at_least billing_requests $((n + 2))
it_assert_eq "billing: the total is still $((before + 40))" $((before + 40)) "$(records)"
it_done
