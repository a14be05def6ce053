#!/bin/bash
# test_threshold: alerts for collectd-only users. The real collectd runs the
# usage plugin with the threshold plugin, the shipped example
# contrib/collectd/usage-threshold.conf (unchanged, for the Jasper source
# "example-jasper") plus a block for the CCC source "acme", and exec as the
# notification target (a script appending each notification to a file).
# Normal activity notifies nothing; a burst of CCC status changes, a Jasper
# data spike and a failing source each fire their notification, and the
# recovered source an OKAY.
. "$(dirname "$0")/lib.sh"

it_setup threshold
for p in threshold exec; do
  if [ ! -f "$IT_DIR/plugins/$p.so" ]; then
    echo "SKIP: collectd's $p plugin not found in $STOCK_PLUGINS"
    exit 77
  fi
done
it_start_sim --ccc-services 1 --ccc-users 2 --ccc-status-changes 5 \
  --jasper-devices 8 --seed 7
svc=$(curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["serviceGuid"])')
MFP=Monthly-Flexible-Pool

# exec never runs a program as root: as root, notify as "nobody", which
# must be able to reach the script and the notification file.
NOTIFY_USER=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  NOTIFY_USER=nobody
  chmod 0755 "$IT_DIR"
fi
mkdir -p "$IT_DIR/notify"
chmod 1777 "$IT_DIR/notify"
NOTES=$IT_DIR/notify/notifications.txt
cat >"$IT_DIR/notify/notify.sh" <<SH
#!/bin/sh
# One notification on stdin: headers, an empty line, the message.
{ cat; echo; echo "----"; } >>"$NOTES"
SH
chmod 0755 "$IT_DIR/notify/notify.sh"

# Timeout: a value is "missing" (a FAILURE notification) only after 30
# intervals, so a scrape that takes longer than its 1 s interval on a busy
# machine does not raise notifications the test does not expect.
IT_EXTRA_CONF=$(cat <<CONF
Timeout 30
Include "$top_srcdir/contrib/collectd/usage-threshold.conf"
<Plugin threshold>
  <Plugin "usage">
    Instance "acme"
    # More than 10 status changes a second over one (1 s) interval.
    <Type "derive">
      WarningMax 10
      Persist false
    </Type>
    <Type "gauge">
      Instance "source_up-ccc"
      FailureMin 1
      Persist false
    </Type>
  </Plugin>
</Plugin>
LoadPlugin exec
<Plugin exec>
  NotificationExec "$NOTIFY_USER" "$IT_DIR/notify/notify.sh"
</Plugin>
CONF
)
# ScrapeTimeout 10: on a busy machine a scrape may take longer than the
# 1 s interval; the default deadline (the Interval) would turn it down.
cat >"$IT_DIR/usage.conf" <<CONF
  <CCC "acme">
    URL "$SIM_URL"
    BearerToken "ccc-token"
    StatusChanges true
    StatusChangesLookback 15552000
    Interval 1
    ScrapeTimeout 10
    <Service "$svc">
    </Service>
  </CCC>
  <Jasper "example-jasper">
    URL "$SIM_URL"
    User "sim-user"
    Password "sim-key"
    RatePlan "$MFP"
    PerDevice true
    DispatchPerDevice true
    Interval 1
    ScrapeTimeout 10
  </Jasper>
CONF
it_start_collectd "$IT_DIR/usage.conf"

sel_sc="usage_ccc_status_changes_total{source=\"acme\",service=\"$svc\",status=\"TrialActive\"}"
it_assert "the CCC source is up" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1 45
it_assert "the Jasper source is up" \
  it_wait_value 'usage_source_up{source="example-jasper",kind="jasper"}' 1 45
it_assert "the status-change counter is there" it_wait_metric "$sel_sc" 45
# log_clean: no complaint in collectd's log apart from notifications and
# collectd's "uc_update: Value too old": its write threads (5 by default)
# take values off one queue, and on a busy machine one of them may store a
# series' value after another stored the next one, which is then older
# (the series names hold "scrape_errors").
log_clean() {
  ! grep -v -e 'Notification: ' -e 'uc_update: Value too old: ' "$IT_DIR/collectd.log" |
    grep -qi -e error -e unknown -e 'not allowed' -e ignor -e refus
}
it_assert "the shipped threshold configuration and exec load without a complaint" log_clean

# notes PATTERN...: the number of notifications matching every pattern
# (one grep -e per header line, e.g. "^Severity: WARNING").
notes() {
  python3 - "$NOTES" "$@" <<'PY'
import sys
try:
    text = open(sys.argv[1]).read()
except OSError:
    text = ""
import re
n = 0
for note in text.split("\n----\n"):
    if note.strip() and all(re.search(p, note, re.M) for p in sys.argv[2:]):
        n += 1
print(n)
PY
}
# more_notes N PATTERN...: more than N notifications match.
more_notes() {
  local n=$1
  shift
  [ "$(notes "$@")" -gt "$n" ]
}
has_note() { more_notes 0 "$@"; }

# Normal activity: a few status changes, a little Jasper growth.
sleep 3
before=$(it_value "$sel_sc")
curl -sf -X POST "$SIM_URL/_sim/ccc/status-changes?service=$svc&status=TrialActive&count=3" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/jasper/grow?add=1000" >/dev/null
it_assert "3 status changes are counted" it_wait_value "$sel_sc" $((before + 3)) 45
sleep 3
it_assert_eq "normal activity (3 status changes, 1 kB per device): no notification" \
  0 "$(notes '^Plugin: usage' '^Severity: (WARNING|FAILURE)')"

# A burst of 50 status changes within one interval. (collectd sends an
# OKAY for each series when it is first seen: count the new ones.)
TI_SC="^TypeInstance: ccc_status_changes-$svc-TrialActive\$"
okays=$(notes '^Severity: OKAY' "$TI_SC")
curl -sf -X POST "$SIM_URL/_sim/ccc/status-changes?service=$svc&status=TrialActive&count=50" >/dev/null
it_assert "50 status changes at once: a WARNING for the status-change counter" \
  it_until 45 has_note '^Severity: WARNING' '^PluginInstance: acme' '^Type: derive' "$TI_SC"
it_assert "... and an OKAY once the burst is over" \
  it_until 45 more_notes "$okays" '^Severity: OKAY' '^PluginInstance: acme' "$TI_SC"

# A Jasper data spike: 20 MB more per device within one interval, against
# the shipped example's limits (warning 1 MB/s, failure 10 MB/s).
curl -sf -X POST "$SIM_URL/_sim/jasper/grow?add=20000000" >/dev/null
it_assert "Jasper data spike: a FAILURE for a device's data counter (shipped example)" \
  it_until 45 has_note '^Severity: FAILURE' '^PluginInstance: example-jasper' \
  '^Type: total_bytes' "^TypeInstance: jasper_device_data_bytes-$MFP-"
it_assert "... and for a zone's data counter" \
  it_until 30 has_note '^Severity: FAILURE' '^PluginInstance: example-jasper' \
  '^Type: total_bytes' "^TypeInstance: jasper_zone_data_bytes-$MFP-"
it_assert_eq "no source-down notification so far" \
  0 "$(notes '^TypeInstance: source_up-' '^Severity: FAILURE')"

# The source goes down, then recovers.
curl -sf -X POST "$SIM_URL/_sim/fault?path=/api/services/&mode=http500&count=0" >/dev/null
it_assert "a failing CCC source: a FAILURE for source_up-ccc" \
  it_until 45 has_note '^Severity: FAILURE' '^PluginInstance: acme' '^Type: gauge' \
  '^TypeInstance: source_up-ccc$'
okays=$(notes '^Severity: OKAY' '^TypeInstance: source_up-ccc$')
curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null
it_assert "the recovered source: an OKAY for source_up-ccc" \
  it_until 45 more_notes "$okays" '^Severity: OKAY' '^PluginInstance: acme' \
  '^TypeInstance: source_up-ccc$'
it_assert_eq "the Jasper source never failed" \
  0 "$(notes '^TypeInstance: source_up-jasper$' '^Severity: (WARNING|FAILURE)')"
[ "$IT_FAIL" -eq 0 ] || { it_log "notifications:"; sed 's/^/#   /' "$NOTES" 2>/dev/null | tail -n 60; }
it_done
