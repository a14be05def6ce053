#!/bin/bash
# test_prometheus: a real Prometheus server (Debian prometheus) scrapes the
# exporter in the real collectd over loopback, the way it is deployed
# hardened: https with a client certificate and Basic auth, OpenMetrics and
# gzip negotiated by Prometheus itself. After a few scrapes the figures read
# back through Prometheus' query API must equal the simulator's data.
. "$(dirname "$0")/lib.sh"

PROMETHEUS=${PROMETHEUS:-$(command -v prometheus 2>/dev/null || true)}
if [ -z "$PROMETHEUS" ]; then
  echo "SKIP: prometheus not found (install the prometheus package)"
  exit 77
fi
it_setup prometheus
it_start_sim --ccc-services 3 --ccc-users 4 --seed 11
TLS="$top_srcdir/tests/fixtures/exporter"
PROM_PID=

curl -sf "$SIM_URL/_sim/ccc/services" >"$IT_DIR/services.json"
python3 -c '
import json, sys
print("  <CCC \"acme\">")
print("    URL \"%s\"" % sys.argv[1])
print("    BearerToken \"ccc-token\"")
print("    Interval 1")
print("    ScrapeTimeout 10")  # a busy machine may need more than 1 s
for s in json.load(open(sys.argv[2])):
    print("    <Service \"%s\">" % s["serviceGuid"])
    print("    </Service>")
print("  </CCC>")' "$SIM_URL" "$IT_DIR/services.json" >"$IT_DIR/usage.conf"

HASH=$(python3 -W ignore -c 'import crypt; print(crypt.crypt("prom-pass", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024)).replace("$2b$", "$2y$", 1))')
IT_EXPORTER_EXTRA="    TLSCertFile \"$TLS/server.pem\"
    TLSKeyFile \"$TLS/server.key\"
    TLSClientCAFile \"$TLS/ca.pem\"
    BasicAuthUser \"prometheus\" \"$HASH\""
METRICS_URL="https://127.0.0.1:$EXPORTER_PORT/metrics"
IT_CURL_OPTS="--cacert $TLS/ca.pem --cert $TLS/client.pem --key $TLS/client.key -u prometheus:prom-pass"
it_start_collectd "$IT_DIR/usage.conf"
it_assert "source up" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1

PROM_PORT=$(it_free_port)
printf 'prom-pass' >"$IT_DIR/prom.pass"
cat >"$IT_DIR/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: usage
    scheme: https
    tls_config:
      ca_file: $TLS/ca.pem
      cert_file: $TLS/client.pem
      key_file: $TLS/client.key
    basic_auth:
      username: prometheus
      password_file: $IT_DIR/prom.pass
    static_configs:
      - targets: ['127.0.0.1:$EXPORTER_PORT']
YML
"$PROMETHEUS" --config.file="$IT_DIR/prometheus.yml" \
  --storage.tsdb.path="$IT_DIR/tsdb" --web.listen-address="127.0.0.1:$PROM_PORT" \
  --log.level=warn >"$IT_DIR/prometheus.log" 2>&1 &
PROM_PID=$!
trap 'kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null; it_cleanup' EXIT
API="http://127.0.0.1:$PROM_PORT/api/v1"

# q EXPR: the query's result vector as "labels value" lines (sorted).
q() {
  curl -sf --get --data-urlencode "query=$1" "$API/query" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
for s in sorted(r, key=lambda s: sorted(s["metric"].items())):
    m = s["metric"]
    print(",".join("%s=%s" % kv for kv in sorted(m.items())), s["value"][1])'
}
up_ok() { [ "$(q 'up{job="usage"}' | awk '{print $2}')" = 1 ]; }
scrapes_ok() { [ "$(q 'count_over_time(up{job="usage"}[1m])' | awk '{print $2}')" -ge 4 ] 2>/dev/null; }
it_assert "Prometheus scrapes the exporter (up == 1)" it_until 30 up_ok
it_assert "... for at least 4 scrapes" it_until 20 scrapes_ok
it_assert_eq "every scrape succeeded" "" \
  "$(q 'up{job="usage"} == 0')"
it_assert_eq "the scrapes were OpenMetrics (counter metadata kept)" counter \
  "$(curl -sf "$API/metadata?metric=usage_scrape_requests" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["usage_scrape_requests"][0]["type"] if d else "none")')"

# The figures read back through Prometheus equal the simulator's.
q '{__name__=~"usage_ccc_service_.*",job="usage"}' >"$IT_DIR/prom.txt"
it_assert "service figures in Prometheus equal the simulator's" python3 - "$SIM_URL" "$IT_DIR/services.json" "$IT_DIR/prom.txt" <<'PY'
import json, sys, urllib.request, urllib.error
sim, services, prom = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
got = {}
for line in open(prom):
    labels, value = line.rsplit(" ", 1)
    got[labels] = float(value)
FIELDS = {"totalUserCount": "usage_ccc_service_users",
          "totalMessageCount": "usage_ccc_service_messages",
          "totalAttachmentCount": "usage_ccc_service_attachments",
          "attachmentStorageUsage": "usage_ccc_service_attachment_storage_bytes"}
checked = bad = 0
for s in services:
    guid = s["serviceGuid"]
    try:
        with urllib.request.urlopen("%s/api/services/%s/serviceusage" % (sim, guid)) as r:
            body = json.load(r)
    except urllib.error.HTTPError:
        body = None
    status_key = "__name__=usage_ccc_service_status,instance=%s,job=usage,service=%s,source=acme,status=%s"
    inst = [k for k in got if "service=%s" % guid in k][:1]
    if not inst:
        print("no series for service", guid); bad += 1; continue
    instance = inst[0].split("instance=")[1].split(",")[0]
    if got.get(status_key % (instance, guid, s["status"])) != 1.0:
        print("status of", guid, "is not", s["status"]); bad += 1
    checked += 1
    if body is None:
        continue
    for field, fam in FIELDS.items():
        key = "__name__=%s,instance=%s,job=usage,service=%s,source=acme" % (fam, instance, guid)
        checked += 1
        if got.get(key) != float(body[field]):
            print(fam, guid, "Prometheus", got.get(key), "simulator", body[field]); bad += 1
print("%d figures compared" % checked)
sys.exit(1 if bad or checked < 8 else 0)
PY
it_assert "info family ingested with its labels" \
  sh -c "test \"\$(curl -sf --get --data-urlencode 'query=count(usage_ccc_service_info{job=\"usage\"})' '$API/query' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"result\"][0][\"value\"][1])')\" -ge 2"
it_assert "counters carry _total in Prometheus" \
  sh -c "curl -sf --get --data-urlencode 'query=usage_scrape_requests_total{job=\"usage\",code=\"200\"}' '$API/query' | grep -q '\"code\":\"200\"'"
it_assert "usage_exporter_build_info has no source label" \
  sh -c "curl -sf --get --data-urlencode 'query=usage_exporter_build_info' '$API/query' | grep -q version && ! curl -sf --get --data-urlencode 'query=usage_exporter_build_info' '$API/query' | grep -q '\"source\"'"
it_done
