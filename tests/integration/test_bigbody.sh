#!/bin/bash
# test_bigbody: 64 MiB answers (refused at MaxResponseSize, 16 MiB) to a
# Jasper and a Billing block in the real collectd: each is counted as
# too_large, the sources come back up, and the memory the bodies took is
# given back: collectd's resident memory after them is within 8 MiB of
# before (from malloc it stayed: 15 MB -> 47 MB after six such bodies).
. "$(dirname "$0")/lib.sh"

it_setup bigbody
it_start_sim --seed 11
cat >"$IT_DIR/usage.conf" <<CONF
  <Jasper "iot">
    URL "$SIM_URL"
    User "sim-user"
    Password "sim-key"
    RatePlan "Monthly-Flexible-Pool"
    Interval 1
  </Jasper>
  <Billing "bill">
    URL "$SIM_URL"
    BearerToken "sim-billing-token"
    Interval 1
  </Billing>
CONF
it_start_collectd "$IT_DIR/usage.conf"
it_assert "jasper up" it_wait_value 'usage_source_up{source="iot",kind="jasper"}' 1 30
it_assert "billing up" it_wait_value 'usage_source_up{source="bill",kind="billing"}' 1 30
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$COLLECTD_PID/status"; }
# a few scrapes more, so that the buffers of ordinary answers are there
for i in 1 2 3; do it_metrics; sleep 1; done
before=$(rss)
curl -sf -X POST "$SIM_URL/_sim/fault?path=/rws/&mode=huge&count=3" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/fault?path=/customer-usage-data&mode=huge&count=3" >/dev/null
refused() {
  [ "$(python3 "$PROM_PY" sum - 'usage_scrape_errors_total{source="'"$1"'",reason="too_large"}' \
    <"$IT_DIR/last.prom" 2>/dev/null)" -ge 3 ] 2>/dev/null
}
both_refused() { it_metrics && refused iot && refused bill; }
it_assert "three 64 MiB bodies per source counted as too_large" it_until 90 both_refused
# the faults are used up: the next scrapes succeed again
it_assert "jasper up again" it_wait_value 'usage_source_up{source="iot",kind="jasper"}' 1 30
it_assert "billing up again" it_wait_value 'usage_source_up{source="bill",kind="billing"}' 1 30
after=$(rss)
it_log "resident memory: $before kB before, $after kB after six 64 MiB bodies"
it_assert "the bodies' memory was given back (within 8 MiB)" [ "$after" -le $((before + 8192)) ]
it_done
