#!/bin/bash
# test_exporter: the embedded exporter in the real collectd. Formats and
# negotiation, gzip, HEAD, status page, error codes (404, 405, 414, 431),
# promtool on the live output; hostile clients (300 idle half-sent requests
# from 10 loopback addresses, a per-IP flood) and 50 concurrent scrapers
# for 30 s (SCRAPE_SECONDS); then TLS with a client
# certificate and Basic auth, and a bad hash refused at start-up.
. "$(dirname "$0")/lib.sh"

it_setup exporter
it_start_sim --ccc-services 3 --ccc-users 4 --seed 7
CLIENTS="$top_srcdir/tests/integration/exporter_clients.py"
TLS="$top_srcdir/tests/fixtures/exporter"
PROM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c '
import json, sys
print("  <CCC \"acme\">")
print("    URL \"%s\"" % sys.argv[1])
print("    BearerToken \"ccc-token-SECRET\"")
print("    Interval 1")
print("    ScrapeTimeout 10")  # a busy machine may need more than 1 s
for s in json.load(sys.stdin):
    print("    <Service \"%s\">" % s["serviceGuid"])
    for u in s["userGuids"]:
        print("      UserGuid \"%s\"" % u)
    print("    </Service>")
print("  </CCC>")' "$SIM_URL" >"$IT_DIR/usage.conf"
IT_EXPORTER_EXTRA='    IdleTimeout 3'
it_start_collectd "$IT_DIR/usage.conf"
it_assert "source up" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1
BASE="http://127.0.0.1:$EXPORTER_PORT"

# Formats, negotiation, gzip, HEAD.
it_assert "promtool check metrics is clean on the live output" it_promtool_check
ct() { curl -s -o /dev/null -w '%{content_type}' "$@"; }
it_assert_eq "text format by default" "text/plain; version=0.0.4; charset=utf-8" "$(ct "$METRICS_URL")"
it_assert_eq "OpenMetrics for Prometheus' Accept" \
  "application/openmetrics-text; version=1.0.0; charset=utf-8" \
  "$(ct -H "Accept: $PROM_ACCEPT" "$METRICS_URL")"
curl -sf -H "Accept: $PROM_ACCEPT" "$METRICS_URL" -o "$IT_DIR/om.txt"
it_assert_eq "OpenMetrics ends with # EOF" "# EOF" "$(tail -n 1 "$IT_DIR/om.txt")"
it_assert "OpenMetrics: counters typed without _total, samples with it" \
  sh -c "grep -q '^# TYPE usage_scrape_requests counter\$' '$IT_DIR/om.txt' &&
         grep -q '^usage_scrape_requests_total{' '$IT_DIR/om.txt'"
it_assert "OpenMetrics: usage_ccc_service_status stays a gauge" \
  grep -q '^# TYPE usage_ccc_service_status gauge$' "$IT_DIR/om.txt"
curl -sf -H 'Accept-Encoding: gzip' -D "$IT_DIR/gz.h" "$METRICS_URL" -o "$IT_DIR/body.gz"
it_assert "gzip when Accept-Encoding allows it" grep -qi '^Content-Encoding: gzip' "$IT_DIR/gz.h"
it_assert "the gzip body inflates to a whole exposition" \
  sh -c "gzip -dc '$IT_DIR/body.gz' | grep -q '^usage_exporter_build_info{version='"
it_assert_eq "HEAD: 200 without a body" "200 0" \
  "$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' "$METRICS_URL")"

# The status page.
curl -sf "$BASE/" -o "$IT_DIR/page.html"
it_assert "status page names the source, its kind and links /metrics" \
  sh -c "grep -q '<td>acme</td><td>ccc</td>' '$IT_DIR/page.html' && grep -q 'href=\"/metrics\"' '$IT_DIR/page.html'"
it_assert "status page: balanced tags, no external assets" python3 -c '
import sys
from html.parser import HTMLParser
VOID = {"meta", "br", "hr", "img", "link", "input"}
class P(HTMLParser):
    stack, bad = [], []
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v and "//" in v:
                self.bad.append(v)
        if tag not in VOID:
            self.stack.append(tag)
    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.bad.append("/" + tag)
p = P()
text = open(sys.argv[1]).read()
p.feed(text)
sys.exit(1 if p.bad or p.stack or not text.startswith("<!DOCTYPE html>") else 0)' "$IT_DIR/page.html"
it_assert "no credential on / or /metrics" \
  sh -c "! grep -q SECRET '$IT_DIR/page.html' '$IT_DIR/last.prom' '$IT_DIR/om.txt'"

# Error codes.
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
it_assert_eq "other path: 404" 404 "$(code "$BASE/metrics/x")"
it_assert_eq "POST: 405" 405 "$(code -X POST -d x=1 "$METRICS_URL")"
it_assert "405 carries Allow: GET, HEAD" \
  sh -c "curl -s -D - -o /dev/null -X DELETE '$METRICS_URL' | grep -qi '^Allow: GET, HEAD'"
it_assert_eq "oversized URL: 414" 414 "$(code "$METRICS_URL?$(head -c 40000 /dev/zero | tr '\0' a)")"
it_assert_eq "oversized header: 431" 431 \
  "$(code -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' b)" "$METRICS_URL")"

# Hostile clients: 300 idle half-sent requests (30 from each of 10
# addresses, under the per-IP limit of 32), a normal scrape meanwhile.
addrs=$(seq -s, -f '127.0.0.%g' 2 11)
out=$(python3 "$CLIENTS" hostile "$EXPORTER_PORT" 300 "$addrs" 3 "$METRICS_URL")
it_log "hostile: $out"
eval "$(echo "$out" | tr ' ' '\n' | sed 's/^/h_/')"
it_assert_eq "300 half-sent requests are all held open" 300 "$h_accepted"
it_assert_eq "a normal scrape meanwhile answers 200" 200 "$h_scrape_code"
it_assert "... within 1 s ($h_scrape_ms ms)" test "$h_scrape_ms" -lt 1000
it_assert_eq "all 300 are closed after the idle timeout (3 s)" 300 "$h_closed"
it_assert "... not before it ($h_after_s s)" python3 -c "import sys; sys.exit(not (1.5 <= $h_after_s <= 7))"
# One address opening 60: only MaxConnectionsPerIP (32) are held.
out=$(python3 "$CLIENTS" hostile "$EXPORTER_PORT" 60 127.0.0.20 3 "$METRICS_URL")
it_log "per-IP flood: $out"
eval "$(echo "$out" | tr ' ' '\n' | sed 's/^/h_/')"
it_assert_eq "one address gets at most 32 connections" 32 "$h_accepted"
it_assert_eq "a scrape from another address still answers" 200 "$h_scrape_code"

# 50 concurrent scrapers (keep-alive; plain, gzip, OpenMetrics) for 30 s.
secs=${SCRAPE_SECONDS:-30}
out=$(python3 "$CLIENTS" scrapers "$EXPORTER_PORT" 50 "$secs" "$(seq -s, -f '127.0.1.%g' 1 5)")
it_log "scrapers: $out"
it_assert "50 scrapers for $secs s: only 200s" sh -c "echo '$out' | grep -Eq '^requests=[0-9]+ codes=200:[0-9]+\$'"
it_assert "collectd still scraping afterwards" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1
it_stop_collectd

# TLS with a client certificate, and Basic auth.
HASH=$(python3 -W ignore -c 'import crypt; print(crypt.crypt("scrape-pass", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)).replace("$2b$", "$2y$", 1))')
IT_EXPORTER_EXTRA="    TLSCertFile \"$TLS/server.pem\"
    TLSKeyFile \"$TLS/server.key\"
    TLSClientCAFile \"$TLS/ca.pem\"
    BasicAuthUser \"prometheus\" \"$HASH\""
METRICS_URL="https://127.0.0.1:$EXPORTER_PORT/metrics"
IT_CURL_OPTS="--cacert $TLS/ca.pem --cert $TLS/client.pem --key $TLS/client.key -u prometheus:scrape-pass"
rm -f "$IT_DIR/last.prom"
it_start_collectd "$IT_DIR/usage.conf"
it_assert "https with client certificate and password: figures served" \
  it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1
it_assert "promtool check metrics is clean over TLS" it_promtool_check
tls_code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$TLS/ca.pem" "$@" "$METRICS_URL"; }
it_assert_eq "no password: 401" 401 "$(tls_code --cert "$TLS/client.pem" --key "$TLS/client.key")"
it_assert_eq "wrong password: 401" 401 "$(tls_code --cert "$TLS/client.pem" --key "$TLS/client.key" -u prometheus:nope)"
it_assert_eq "unknown user: 401" 401 "$(tls_code --cert "$TLS/client.pem" --key "$TLS/client.key" -u root:scrape-pass)"
c=$(tls_code -u prometheus:scrape-pass)
it_assert "no client certificate: refused ($c)" test "$c" = 403 -o "$c" = 000
c=$(tls_code --cert "$TLS/rogue.pem" --key "$TLS/rogue.key" -u prometheus:scrape-pass)
it_assert "a certificate the CA did not sign: refused ($c)" test "$c" = 403 -o "$c" = 000
it_assert_eq "plain http to the TLS port: no answer" 000 \
  "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$EXPORTER_PORT/metrics")"
it_assert "the password is not logged" sh -c "! grep -q 'scrape-pass' '$IT_DIR/collectd.log'"
it_stop_collectd

# A bad hash is refused at start-up with one clear line.
IT_EXPORTER_EXTRA='    BasicAuthUser "prometheus" "plaintext-password"'
it_write_config "$IT_DIR/usage.conf"
timeout 20 "$COLLECTD" -f -C "$IT_DIR/collectd.conf" >>"$IT_DIR/collectd.out" 2>&1 &
pid=$!
it_until 10 grep -q 'BasicAuthUser' "$IT_DIR/collectd.log"
it_assert "a plaintext password instead of a hash is refused, naming the option" \
  grep -q 'Exporter: option "BasicAuthUser": user "prometheus": the hash is not a bcrypt hash' "$IT_DIR/collectd.log"
it_assert "... and the plaintext is not logged" sh -c "! grep -q 'plaintext-password' '$IT_DIR/collectd.log'"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null

# The exporter's port already taken: the plugin fails to start and nothing
# scrapes (the read callbacks are registered only after the exporter runs).
IT_EXPORTER_EXTRA=''
EXPORTER_PORT=$(it_free_port)
python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
time.sleep(40)' "$EXPORTER_PORT" &
holder=$!
it_until 5 python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$EXPORTER_PORT"
curl -sf -X POST "$SIM_URL/_sim/requests/reset" -o /dev/null
it_write_config "$IT_DIR/usage.conf"
timeout 30 "$COLLECTD" -f -C "$IT_DIR/collectd.conf" >>"$IT_DIR/collectd.out" 2>&1 &
pid=$!
it_assert "port in use: the start-up failure is logged" \
  it_until 15 grep -q 'Exporter: cannot listen on 127.0.0.1 port '"$EXPORTER_PORT" "$IT_DIR/collectd.log"
sleep 3 # Interval 1: three scrapes would have run by now
vendor_requests() {
  curl -sf "$SIM_URL/_sim/requests" | python3 -c 'import json, sys
print(json.load(sys.stdin)["total"])'
}
it_assert_eq "port in use: no upstream request reaches the simulator" 0 "$(vendor_requests)"
kill "$pid" "$holder" 2>/dev/null
wait "$pid" "$holder" 2>/dev/null
it_done
