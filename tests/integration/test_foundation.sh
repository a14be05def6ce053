#!/bin/bash
# test_foundation: the real collectd loads the built usage.so, scrapes CCC
# GetServiceUsage from the simulator, and serves the figures on /metrics;
# the collectd side carries the same figures; promtool accepts the output;
# an upstream failure turns usage_source_up to 0 and keeps the figures;
# a connection refused, a connection dropped without an answer and a body
# cut off half-way are told apart by their reasons and in the log, and the
# source recovers from each; no credential or stack trace reaches the log.
. "$(dirname "$0")/lib.sh"

it_setup foundation
it_start_sim --ccc-services 4 --seed 11
guids=$(curl -sf "$SIM_URL/_sim/ccc/services" |
  python3 -c 'import json,sys; print(" ".join(s["serviceGuid"] for s in json.load(sys.stdin)))')
it_assert_eq "the simulator lists 4 services" 4 "$(echo $guids | wc -w)"

TOKEN="tok-$RANDOM-SECRET"
{
  echo '  <CCC "acme">'
  echo "    URL \"$SIM_URL\""
  echo "    BearerToken \"$TOKEN\""
  echo '    Interval 1'
  echo '    Timeout 2000'
  for g in $guids; do
    # the first one dashed and upper case: GUIDs are accepted in any form
    if [ -z "${dashed:-}" ]; then
      dashed=1
      g=$(echo "$g" | tr a-f A-F | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
    fi
    echo "    <Service \"$g\">"
    echo '    </Service>'
  done
  echo '  </CCC>'
  # a block whose URL nobody listens on
  echo '  <CCC "nowhere">'
  echo "    URL \"http://127.0.0.1:$(it_free_port)\""
  echo "    BearerToken \"$TOKEN\""
  echo '    Interval 1'
  echo "    Service \"${guids%% *}\""
  echo '  </CCC>'
} >"$IT_DIR/usage.conf"
it_start_collectd "$IT_DIR/usage.conf"

it_assert "usage_source_up appears" it_wait_metric 'usage_source_up{source="acme",kind="ccc"}'
it_assert_eq "source up (Blocked and Provisioning are documented refusals)" 1 \
  "$(it_value 'usage_source_up{source="acme",kind="ccc"}')"
python3 "$top_srcdir/tests/integration/check_ccc.py" snapshot "$SIM_URL" "$IT_DIR/expected.json" $guids
it_metrics
it_assert "every service figure equals the simulator's" \
  python3 "$top_srcdir/tests/integration/check_ccc.py" compare "$IT_DIR/expected.json" "$IT_DIR/last.prom" acme
it_assert "refusals counted: service_blocked" \
  sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/last.prom' 'usage_scrape_errors_total{source=\"acme\",reason=\"service_blocked\"}')\" -ge 1 ]"
it_assert "refusals counted: service_provisioning" \
  sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/last.prom' 'usage_scrape_errors_total{source=\"acme\",reason=\"service_provisioning\"}')\" -ge 1 ]"
it_assert "requests counted by code (200)" \
  sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/last.prom' 'usage_scrape_requests_total{source=\"acme\",code=\"200\"}')\" -ge 2 ]"
it_assert "last success timestamp present" it_value 'usage_last_success_timestamp_seconds{source="acme"}'
it_assert "build info present" it_value 'usage_exporter_build_info{version="'"$(sed -n 's/^AC_INIT(\[[^]]*\], \[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")"'"}'
it_assert "promtool check metrics is clean" it_promtool_check

# The collectd side: wait one more interval so csv has the same scrape.
sleep 2
it_metrics
it_assert "collectd (csv) carries the same figures as /metrics" \
  python3 "$top_srcdir/tests/integration/check_collectd.py" "$IT_DIR/last.prom" "$IT_DIR/csv" acme usage_ccc_

# Upstream failure: every service answers 500. Figures stay, up goes 0.
cp "$IT_DIR/last.prom" "$IT_DIR/before.prom"
curl -sf -X POST "$SIM_URL/_sim/fault?path=/api/services/&mode=http500&count=0" >/dev/null
it_assert "usage_source_up turns 0 on HTTP 500" \
  it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 0
it_metrics
it_assert "the last figures are kept while upstream fails" \
  python3 "$top_srcdir/tests/integration/check_ccc.py" compare "$IT_DIR/expected.json" "$IT_DIR/last.prom" acme
it_assert "errors counted by reason http_5xx" \
  sh -c "[ \"\$(python3 '$PROM_PY' value '$IT_DIR/last.prom' 'usage_scrape_errors_total{source=\"acme\",reason=\"http_5xx\"}')\" -ge 1 ]"
it_assert "one log line names the source, URL and HTTP status" \
  grep -q "usage plugin: CCC \"acme\": service .*: GET $SIM_URL/api/services/.*/serviceusage: HTTP 500" "$IT_DIR/collectd.log"
# Wait (bounded) for at least 12 failed scrapes. Each scrape asks the
# first service on schedule; after its 500 the source's backoff keeps the
# other requests of that scrape back (reason deadline), so the failures
# counted as http_5xx are those of the first service, one or more a scrape.
first=${guids%% *}
for _ in $(seq 120); do
  fails=$(it_value 'usage_scrape_errors_total{source="acme",reason="http_5xx"}')
  [ "$fails" -ge 12 ] && break
  sleep 0.5
done
n500=$(grep -c "service $first: .*HTTP 500" "$IT_DIR/collectd.log")
it_assert "repeated failures are throttled ($fails failures, $n500 log lines for the first service)" \
  test "$n500" -ge 1 -a "$fails" -ge 12 -a "$n500" -le $((fails / 2))

# A malformed body: parse error, figures kept.
curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null
it_assert "usage_source_up back to 1 after recovery" \
  it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1
curl -sf -X POST "$SIM_URL/_sim/fault?path=/api/services/&mode=malformed&count=0" >/dev/null
it_assert "usage_source_up turns 0 on a malformed body" \
  it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 0
it_assert "errors counted by reason parse" \
  sh -c "[ \"\$(python3 '$PROM_PY' sum '$IT_DIR/last.prom' 'usage_scrape_errors_total{source=\"acme\",reason=\"parse\"}')\" -ge 1 ]"
it_metrics
it_assert "the last figures are kept after a malformed body" \
  python3 "$top_srcdir/tests/integration/check_ccc.py" compare "$IT_DIR/expected.json" "$IT_DIR/last.prom" acme
curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null
it_assert "usage_source_up back to 1 after the malformed bodies" \
  it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1

# Transport faults, each with its own reason and words in the log, the
# source down while it lasts and up again after. (Faults until cleared:
# libcurl repeats a request once when a reused connection closes without an
# answer.)
# down_with SOURCE REASON: one /metrics shows the reason counted and the
# source down; up SOURCE: the source up
down_with() {
  it_metrics &&
    grep -q "^usage_scrape_errors_total{source=\"$1\",reason=\"$2\"} [1-9]" "$IT_DIR/last.prom" &&
    grep -q "^usage_source_up{source=\"$1\",kind=\"ccc\"} 0$" "$IT_DIR/last.prom"
}
up() { it_metrics && grep -q "^usage_source_up{source=\"$1\",kind=\"ccc\"} 1$" "$IT_DIR/last.prom"; }
it_assert "a port nobody listens on: down, reason connection_refused" \
  it_until 15 down_with nowhere connection_refused
it_assert "the log says the connection was refused" \
  grep -q 'CCC "nowhere": service .*failed: connection refused' "$IT_DIR/collectd.log"
transport_fault() { # MODE REASON WORDS
  curl -sf -X POST "$SIM_URL/_sim/fault?path=/api/services/&mode=$1&count=0" >/dev/null
  it_assert "$1: down, reason $2" it_until 15 down_with acme "$2"
  it_assert "$1: the log says: $3" grep -q "CCC \"acme\": service .*failed: $3" "$IT_DIR/collectd.log"
  curl -sf -X POST "$SIM_URL/_sim/fault/clear" >/dev/null
  it_assert "$1: usage_source_up back to 1" it_until 15 up acme
}
transport_fault drop connection_dropped "connection closed by the server before any answer"
transport_fault cut body_truncated "answer cut off: HTTP 200, [0-9]* of [0-9]* body bytes arrived"
it_metrics
it_assert "the other transport reasons stay 0 (acme)" sh -c \
  "grep -q '^usage_scrape_errors_total{source=\"acme\",reason=\"connection_refused\"} 0$' '$IT_DIR/last.prom' &&
   grep -q '^usage_scrape_errors_total{source=\"acme\",reason=\"connect\"} 0$' '$IT_DIR/last.prom' &&
   grep -q '^usage_scrape_errors_total{source=\"acme\",reason=\"timeout\"} 0$' '$IT_DIR/last.prom'"

it_assert "the bearer token never reaches the log" \
  sh -c "! grep -q '$TOKEN' '$IT_DIR/collectd.log' '$IT_DIR/collectd.out'"
it_assert "the upstream stack trace never reaches the log" \
  sh -c "! grep -q SIM-SECRET-STACKTRACE '$IT_DIR/collectd.log' '$IT_DIR/collectd.out'"
it_assert "exporter answers 404 on other paths" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EXPORTER_PORT/nope")" = 404
it_assert "exporter answers 405 to POST" \
  test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$METRICS_URL")" = 405
it_assert "status page names the source" \
  sh -c "curl -sf http://127.0.0.1:$EXPORTER_PORT/ | grep -q '<td>acme</td><td>ccc</td>'"

it_stop_collectd
it_assert "collectd shut down cleanly" grep -q "Exiting normally" "$IT_DIR/collectd.log"
it_done
