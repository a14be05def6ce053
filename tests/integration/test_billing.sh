#!/bin/bash
# test_billing: the real collectd scrapes the billing simulator over several
# pages; the counters on /metrics and on the collectd side (csv) equal the
# simulator's sums per group; records added at run time (some loaded late)
# move them by exactly their sums; an expired token and a truncated page
# change nothing; kill -9 of collectd and a restart with the StateFile
# neither lose nor double-count a record.
. "$(dirname "$0")/lib.sh"

it_setup billing
it_start_sim --billing-records 2500 --seed 7

# billing_match: last.prom equals the simulator's totals per group;
# metrics_match: the same for a fresh /metrics; sim_total: the records the
# simulator holds.
CHECK="$top_srcdir/tests/integration"
GROUPBY="customerId callClass usageDirection"
billing_match() {
  python3 "$CHECK/check_billing.py" "$SIM_URL" "$IT_DIR/last.prom" acme-billing $GROUPBY
}
metrics_match() { it_metrics && billing_match; }
sim_total() {
  curl -sf "$SIM_URL/_sim/billing/totals?groupBy=customerId,callClass,usageDirection" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["records"])'
}
records_sum() { it_sum 'usage_billing_records_total{source="acme-billing"}' | python3 -c 'print(int(float(input())))'; }

printf 'sim-billing-token\n' >"$IT_DIR/token"
cat >"$IT_DIR/usage.conf" <<CONF
  <Billing "acme-billing">
    URL "$SIM_URL"
    BearerTokenFile "$IT_DIR/token"
    PageSize 400
    InitialLookback 4320000
    StateFile "$IT_DIR/billing.state"
    Interval 1
    Timeout 5000
  </Billing>
CONF
it_start_collectd "$IT_DIR/usage.conf"

it_assert "billing counters appear" it_wait_metric 'usage_source_up{source="acme-billing",kind="billing"}' 20
it_assert "counters equal the simulator's sums per group (7 pages)" it_until 20 metrics_match
metrics_match || true
it_assert_eq "records counted once" 2500 "$(records_sum)"
it_assert_eq "source up" 1 "$(it_value 'usage_source_up{source="acme-billing",kind="billing"}')"
it_assert "overflow counter published at 0" \
  sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/last.prom' 'usage_billing_overflow_records_total{source=\"acme-billing\"}')\" = 0 ]"
it_assert "state file written" test -s "$IT_DIR/billing.state"
it_assert "promtool check metrics is clean" it_promtool_check
sleep 2
it_metrics
it_assert "the same scrape still equals the simulator's sums" billing_match
it_assert "collectd (csv) carries the same figures" \
  python3 "$CHECK/check_collectd.py" "$IT_DIR/last.prom" "$IT_DIR/csv" acme-billing usage_billing_

# Records added at run time, some loaded late (eventDate 1-2 days ago).
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=450" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=150&late=1" >/dev/null
it_assert "new and late records move the counters by exactly their sums" it_until 20 metrics_match
it_assert_eq "records after the additions" 3100 "$(records_sum)"

# A truncated page: nothing of that scrape is committed, the next retries.
curl -sf -X POST "$SIM_URL/_sim/fault?path=/customer-usage-data&mode=malformed&count=1" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=20" >/dev/null
it_assert "parse error counted" it_until 15 sh -c \
  "curl -sf '$METRICS_URL' | grep -q '^usage_scrape_errors_total{source=\"acme-billing\",reason=\"parse\"} [1-9]'"
it_assert "after the retry the counters match again" it_until 20 metrics_match
it_assert_eq "records after the truncated page" 3120 "$(records_sum)"

# An expired token: reason auth, counters kept, the token never logged.
curl -sf -X POST "$SIM_URL/_sim/billing/token?token=rotated-SECRET-2" >/dev/null
it_assert "auth error counted" it_until 15 sh -c \
  "curl -sf '$METRICS_URL' | grep -q '^usage_scrape_errors_total{source=\"acme-billing\",reason=\"auth\"} [1-9]'"
it_assert_eq "source down while the token is refused" 0 "$(it_value 'usage_source_up{source="acme-billing",kind="billing"}')"
it_assert_eq "counters kept" 3120 "$(records_sum)"
printf 'rotated-SECRET-2\n' >"$IT_DIR/token.new" && mv "$IT_DIR/token.new" "$IT_DIR/token"
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=30&late=1" >/dev/null
it_assert "the rotated token file is picked up" it_until 20 metrics_match
it_assert_eq "records after the rotation" 3150 "$(records_sum)"

# kill -9, more records (some late) while collectd is down, restart.
it_kill_collectd
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=70" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/billing/records?count=40&late=1" >/dev/null
it_start_collectd "$IT_DIR/usage.conf"
it_assert "after kill -9 and a restart the counters match the simulator" it_until 20 metrics_match
it_assert_eq "records after the restart (none lost, none twice)" 3260 "$(records_sum)"
it_assert_eq "simulator holds the same number" 3260 "$(sim_total)"
it_assert "the state was restored (log)" grep -q 'state restored from' "$IT_DIR/collectd.log"
it_assert "no token in the log" sh -c "! grep -q -e 'SECRET' -e 'sim-billing-token' '$IT_DIR/collectd.log'"

# A clean stop and a second restart: still exact.
it_stop_collectd
it_start_collectd "$IT_DIR/usage.conf"
it_assert "after a clean restart the counters still match" it_until 20 metrics_match
it_assert_eq "records after the second restart" 3260 "$(records_sum)"

# Meta data: by default the value lists carry none; with DispatchMetaData
# true each carries its labels as "label:NAME" entries, which a JSON write
# plugin (write_log) shows next to the type instance holding the same values.
meta_check() { # $1: log offset, $2: with or without
  python3 - "$IT_DIR/collectd.log" "$1" "$2" <<'PY'
import json, re, sys
log, off, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
text = open(log, encoding="utf-8", errors="replace").read()[off:]
seen = with_meta = 0
for m in re.finditer(r"write_log values:\s*(\[.*?\])\s*$", text, re.M | re.S):
    try:
        vls = json.loads(m.group(1))
    except ValueError:
        sys.exit("not JSON: %r" % m.group(1)[:600])
    for vl in vls:
        if vl.get("plugin") != "usage":
            continue
        if want == "without" and "meta" in vl:
            sys.exit("meta data without DispatchMetaData true: %r" % vl)
        if not vl["type_instance"].startswith("billing_records-"):
            continue
        seen += 1
        meta = vl.get("meta") or {}
        if want == "without":
            continue
        labels = {k[6:]: v for k, v in meta.items() if k.startswith("label:")}
        if sorted(labels) != ["call_class", "customer_id", "usage_direction"]:
            sys.exit("labels %r in %r" % (labels, vl))
        parts = vl["type_instance"].split("-")[1:]
        if parts != [labels["customer_id"], labels["call_class"], labels["usage_direction"]]:
            sys.exit("type instance %r, labels %r" % (vl["type_instance"], labels))
        with_meta += 1
if seen < 10:
    sys.exit("only %d billing_records value lists logged" % seen)
print("%d billing_records value lists, %d with meta data" % (seen, with_meta))
PY
}
IT_EXTRA_CONF='LoadPlugin write_log
<Plugin write_log>
  Format JSON
</Plugin>'
it_stop_collectd
off=$(stat -c %s "$IT_DIR/collectd.log")
it_start_collectd "$IT_DIR/usage.conf"
it_until 20 meta_check "$off" without
it_assert "the value lists carry no meta data by default" meta_check "$off" without
it_stop_collectd
off=$(stat -c %s "$IT_DIR/collectd.log")
sed -i 's/^    Timeout 5000$/&\n    DispatchMetaData true/' "$IT_DIR/usage.conf"
it_start_collectd "$IT_DIR/usage.conf"
it_until 20 meta_check "$off" with
it_assert "with DispatchMetaData true they carry their labels as meta data" \
  meta_check "$off" with
it_assert "still exact" it_until 20 metrics_match
it_done
