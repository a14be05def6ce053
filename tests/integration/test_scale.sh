#!/bin/bash
# test_scale: one configuration on three collectd shards and an HA pair,
# stored in a real VictoriaMetrics through vmagent, all on 127.0.0.1.
#  - shards: USAGE_SHARD=1/3, 2/3, 3/3 with one shared file; every block is
#    owned by exactly one shard (by the documented FNV-1a hash, or its own
#    Shard option); through VictoriaMetrics' query API, sum by (source) of
#    every billing and Jasper family equals the simulators' totals exactly;
#  - politeness per account: three Jasper blocks of one account spread over
#    the shards stay together within the account's 5 requests per second
#    (the simulator's request log, and its own rate limiter saw no excess);
#  - HA pair: two replicas of the same blocks, each scraped by its own
#    vmagent under the same labels, VictoriaMetrics deduplicating, the
#    replicas taking turns at the vendor (USAGE_REPLICA=1/2, 2/2): the
#    stored counters equal the totals (not twice); after kill -9 of one
#    replica the series go on from the other, and new records are counted.
. "$(dirname "$0")/lib.sh"

it_setup scale
VM=${VICTORIA_METRICS:-$(command -v victoria-metrics || true)}
VMAGENT=${VMAGENT:-$(command -v vmagent || true)}
if [ -z "$VM" ] || [ -z "$VMAGENT" ]; then
  echo "SKIP: victoria-metrics and vmagent not found (Debian: victoria-metrics)"
  exit 77
fi

EXTRA_PIDS=()
scale_cleanup() {
  local rc=$?
  for p in "${EXTRA_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${EXTRA_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ "$IT_FAIL" -gt 0 ] || [ "$rc" -ne 0 -a "$rc" -ne 77 ]; then
    for d in "$IT_DIR"/c-*; do
      [ -f "$d/collectd.log" ] || continue
      it_log "$d/collectd.log (tail):"
      tail -n 15 "$d/collectd.log" | sed 's/^/#   /'
    done
    tail -n 10 "$IT_DIR"/vm.out "$IT_DIR"/vmagent-*.out 2>/dev/null | sed 's/^/#   /'
  fi
  (exit "$rc")
  it_cleanup
}
trap scale_cleanup EXIT

# start_sim NAME ARGS...: a simulator = one vendor account; sets URL_<NAME>.
start_sim() {
  local name=$1
  shift
  "$top_builddir/usage-sim" --address 127.0.0.1 --port 0 \
    --port-file "$IT_DIR/sim-$name.port" --request-log "$IT_DIR/sim-$name.log" \
    "$@" >"$IT_DIR/sim-$name.out" 2>&1 &
  EXTRA_PIDS+=($!)
  it_until 10 test -s "$IT_DIR/sim-$name.port" || { echo "simulator $name did not start"; exit 99; }
  eval "URL_$name=http://127.0.0.1:$(cat "$IT_DIR/sim-$name.port")"
}

start_sim A --billing-records 700 --seed 21 --jasper-devices 120
start_sim B --billing-records 400 --seed 22 --jasper-devices 40
start_sim C --billing-records 300 --seed 23 --jasper-devices 30
# Simulators A and C serve one Jasper account each (B serves the billing
# blocks and one more Jasper account): the vendor's limit as the simulator
# enforces it, more than 5 requests in any second answered 429 and counted.
for s in "$URL_A" "$URL_C"; do
  curl -sf -X POST "$s/_sim/rate-limit?per-second=5" >/dev/null || exit 99
done
plans() { curl -sf "$1/_sim/jasper/plans" | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d.get("plans", d) if isinstance(d, dict) else d
names = [p.get("ratePlanName") or p.get("name") for p in d]
print(" ".join(n for n in names if n not in ("Shared-Pool", "Duplicate-Plan")))'; }
read -r PA1 PA2 PA3 _ <<<"$(plans "$URL_A")"
read -r PB1 _ <<<"$(plans "$URL_B")"
read -r PC1 _ <<<"$(plans "$URL_C")"
[ -n "$PA3" ] && [ -n "$PB1" ] && [ -n "$PC1" ] || { echo "no rate plans"; exit 99; }

# --- one shared configuration -------------------------------------------
# ScrapeTimeout 60: a scrape paced by the account's shared budget may take
# longer than its interval; the default deadline (the Interval) would cut it.
billing() { # NAME URL [more lines]
  printf '  <Billing "%s">\n    URL "%s"\n    BearerToken "sim-billing-token"\n    InitialLookback 4320000\n    PageSize 100\n    Interval 2\n    ScrapeTimeout 60\n%s  </Billing>\n' "$1" "$2" "${3:-}"
}
jasper() { # NAME URL PLAN [more lines]
  printf '  <Jasper "%s">\n    URL "%s"\n    User "sim-user"\n    Password "sim-key"\n    RatePlan "%s"\n    PageSize 10\n    Interval 3\n    ScrapeTimeout 60\n    Timeout 5000\n%s  </Jasper>\n' "$1" "$2" "$3" "${4:-}"
}
{
  billing bill-a "$URL_B"
  billing bill-b "$URL_B" "    Shard 2
"
  jasper iot-a-1 "$URL_A" "$PA1" "    Shard 1
"
  jasper iot-a-2 "$URL_A" "$PA2" "    Shard 2
"
  jasper iot-a-3 "$URL_A" "$PA3" "    Shard 3
"
  jasper iot-b "$URL_B" "$PB1"
} >"$IT_DIR/shared.conf"
BLOCKS="bill-a bill-b iot-a-1 iot-a-2 iot-a-3 iot-b"
{
  billing ha-bill "$URL_B"
  jasper ha-iot "$URL_C" "$PC1"
} >"$IT_DIR/ha.conf"

# start_instance NAME CONF [ENV...]: a collectd with its own exporter port;
# sets PORT_<NAME> and PID_<NAME>.
start_instance() {
  local name=$1 conf=$2 d="$IT_DIR/c-$1" port
  shift 2
  mkdir -p "$d/csv"
  port=$(it_free_port)
  cat >"$d/collectd.conf" <<CONF
Interval 1
BaseDir "$d"
PIDFile "$d/collectd.pid"
PluginDir "$IT_DIR/plugins"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$d/collectd.log"
  Timestamp true
</Plugin>
LoadPlugin usage
<Plugin usage>
  <Exporter>
    Address "127.0.0.1"
    Port "$port"
  </Exporter>
$(cat "$conf")
</Plugin>
CONF
  env "$@" "$COLLECTD" -f -C "$d/collectd.conf" >"$d/collectd.out" 2>&1 &
  local pid=$!
  EXTRA_PIDS+=($pid)
  eval "PORT_$name=$port PID_$name=$pid"
  it_until 20 curl -sf -o /dev/null "http://127.0.0.1:$port/metrics" ||
    { echo "collectd $name did not start"; exit 1; }
}

start_instance s1 "$IT_DIR/shared.conf" USAGE_SHARD=1/3
start_instance s2 "$IT_DIR/shared.conf" USAGE_SHARD=2/3
start_instance s3 "$IT_DIR/shared.conf" USAGE_SHARD=3/3
start_instance r1 "$IT_DIR/ha.conf" USAGE_REPLICA=1/2
start_instance r2 "$IT_DIR/ha.conf" USAGE_REPLICA=2/2

# --- VictoriaMetrics and vmagent ------------------------------------------
VM_PORT=$(it_free_port)
"$VM" -httpListenAddr "127.0.0.1:$VM_PORT" -storageDataPath "$IT_DIR/vm-data" \
  -retentionPeriod 1d -dedup.minScrapeInterval 1s -search.latencyOffset 0s \
  -search.disableCache >"$IT_DIR/vm.out" 2>&1 &
EXTRA_PIDS+=($!)
VM_URL="http://127.0.0.1:$VM_PORT"
it_until 30 curl -sf -o /dev/null "$VM_URL/health" || { echo "victoria-metrics did not start"; exit 99; }

# vmagent NAME JOB TARGET...: one vmagent scraping TARGETs every second,
# writing to VictoriaMetrics. The HA replicas are scraped by one vmagent
# each under the same labels (instance="ha-pair"), as HA Prometheus pairs
# are, so the store sees one series twice and deduplicates it.
start_vmagent() {
  local name=$1 job=$2 ha=$3
  shift 3
  local cfg="$IT_DIR/vmagent-$name.yml" targets=""
  for t in "$@"; do targets="$targets\"$t\", "; done
  {
    echo "global: {scrape_interval: 1s, scrape_timeout: 1s}"
    echo "scrape_configs:"
    echo "  - job_name: $job"
    echo "    static_configs: [{targets: [${targets%, }]}]"
    [ "$ha" = ha ] && echo "    relabel_configs: [{target_label: instance, replacement: ha-pair}]"
  } >"$cfg"
  "$VMAGENT" -httpListenAddr "127.0.0.1:$(it_free_port)" -promscrape.config "$cfg" \
    -remoteWrite.url "$VM_URL/api/v1/write" -remoteWrite.flushInterval 1s \
    -remoteWrite.tmpDataPath "$IT_DIR/vmagent-$name" >"$IT_DIR/vmagent-$name.out" 2>&1 &
  EXTRA_PIDS+=($!)
  eval "VMAGENT_PID_$name=$!"
}
start_vmagent shards usage no "127.0.0.1:$PORT_s1" "127.0.0.1:$PORT_s2" "127.0.0.1:$PORT_s3"
start_vmagent ha1 usage-ha ha "127.0.0.1:$PORT_r1"
start_vmagent ha2 usage-ha ha "127.0.0.1:$PORT_r2"

# vmq QUERY: the instant result as "labels-json value" lines.
vmq() {
  curl -sf --get "$VM_URL/api/v1/query" --data-urlencode "query=$1" |
    python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print(json.dumps(r["metric"], sort_keys=True), r["value"][1])'
}

# --- ownership ----------------------------------------------------------------
cat >"$IT_DIR/owner.py" <<'PY'
import sys
# the documented hash: FNV-1a 64 over the name's bytes, mod N, plus one
def shard(name, n):
    h = 0xcbf29ce484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h % n + 1
fixed = {"bill-b": 2, "iot-a-1": 1, "iot-a-2": 2, "iot-a-3": 3}
for name in sys.argv[1:]:
    print(name, fixed.get(name, shard(name, 3)))
PY
owners_ok() {
  local want got=""
  want=$(python3 "$IT_DIR/owner.py" $BLOCKS | sort)
  for i in 1 2 3; do
    local port
    eval "port=\$PORT_s$i"
    got="$got$(curl -sf "http://127.0.0.1:$port/metrics" |
      sed -n "s/^usage_shard_source_info{source=\"\([^\"]*\)\".*shard=\"$i\"} 1\$/\1 $i/p")
"
  done
  [ "$(printf '%s' "$got" | sed '/^$/d' | sort)" = "$want" ]
}
it_assert "each shard owns the blocks of the documented hash or its Shard option" owners_ok
it_assert "usage_shard_info names the shard" \
  sh -c "curl -sf 'http://127.0.0.1:$PORT_s2/metrics' | grep -qx 'usage_shard_info{shard=\"2\",shards=\"3\"} 1'"
not_owned_silent() {
  # a block of shard 2 publishes nothing from shard 1, not even up
  ! curl -sf "http://127.0.0.1:$PORT_s1/metrics" | grep -q 'source="iot-a-2"'
}
it_assert "a block of another shard publishes nothing" not_owned_silent
it_assert "the log gives each block its share of the account's budget" \
  grep -q 'iot-a-1": 3 blocks (or replicas) reach the same account; this one may send 1.67 requests per second' "$IT_DIR/c-s1/collectd.log"

# --- the store equals the simulators --------------------------------------
cat >"$IT_DIR/expect.py" <<'PY'
import json, sys, urllib.parse, urllib.request
def get(u): return json.load(urllib.request.urlopen(u))
out = {}
for spec in sys.argv[1:]:
    kind, source, url = spec.split("=", 2)
    if kind == "billing":
        t = get(url + "/_sim/billing/totals?groupBy=customerId")["total"]
        out["usage_billing_records_total", source] = float(t["records"])
        out["usage_billing_data_bytes_total", source] = float(t["dataQuantity"]) * 1e6
        out["usage_billing_duration_seconds_total", source] = float(t["durationQuantity"])
        out["usage_billing_sell_price_total", source] = float(t["sellPrice"])
        out["usage_billing_buy_price_total", source] = float(t["buyPrice"])
    else:
        url, plan = url.rsplit("@", 1)
        z = get(url + "/_sim/jasper/totals?ratePlan=" + urllib.parse.quote(plan))["zones"]
        out["usage_jasper_zone_data_bytes_total", source] = float(sum(x["dataUsage"] for x in z))
        out["usage_jasper_zone_sms_total", source] = float(sum(x["smsMOUsage"] + x["smsMTUsage"] for x in z))
        out["usage_jasper_zone_voice_seconds_total", source] = float(sum(x["voiceMOUsage"] + x["voiceMTUsage"] for x in z))
        out["usage_jasper_zone_devices", source] = float(sum(x["devices"] for x in z))
for (fam, source), v in sorted(out.items()):
    print(fam, source, repr(v))
PY
SPECS="billing=bill-a=$URL_B billing=bill-b=$URL_B jasper=iot-a-1=$URL_A@$PA1 \
jasper=iot-a-2=$URL_A@$PA2 jasper=iot-a-3=$URL_A@$PA3 jasper=iot-b=$URL_B@$PB1"
HA_SPECS="billing=ha-bill=$URL_B jasper=ha-iot=$URL_C@$PC1"

# store_matches SPECS...: every family's sum by (source) in the store equals
# the simulator's total, exactly (a relative 1e-12 for the float sums).
store_matches() {
  python3 "$IT_DIR/expect.py" "$@" >"$IT_DIR/expect.txt" || return 1
  local fam source want got
  while read -r fam source want; do
    got=$(vmq "sum by (source) ($fam{source=\"$source\"})" | awk '{print $NF}')
    python3 -c 'import sys; w, g = float(sys.argv[1]), float(sys.argv[2] or "nan")
sys.exit(0 if abs(w - g) <= 1e-12 * max(1.0, abs(w)) else 1)' "$want" "${got:-nan}" ||
      { echo "# $fam{source=$source}: store $got, simulator $want" >>"$IT_DIR/mismatch.txt"; return 1; }
  done <"$IT_DIR/expect.txt"
}
it_assert "through VictoriaMetrics, sum by (source) of every family equals the simulators (3 shards)" \
  it_until 90 store_matches $SPECS
[ -f "$IT_DIR/mismatch.txt" ] && tail -n 3 "$IT_DIR/mismatch.txt"
it_assert_eq "every block is owned exactly once (count by source in the store)" \
  "6 1" "$(vmq 'count by (source) (usage_shard_source_info{job="usage"})' | awk '{n++; if ($NF != 1) bad++} END {print n, bad ? 0 : 1}')"
it_log "series per shard: $(for i in 1 2 3; do eval "p=\$PORT_s$i"; printf 's%s=%s ' $i "$(curl -sf "http://127.0.0.1:$p/metrics" | grep -vc '^#')"; done)"

# --- HA pair ----------------------------------------------------------------
it_assert "HA pair: the stored counters equal the totals, not twice" \
  it_until 60 store_matches $HA_SPECS
it_assert_eq "HA pair: one stored series per label set (deduplicated)" 1 \
  "$(vmq 'max(count by (customer_id, call_class, usage_direction) (usage_billing_records_total{source="ha-bill"}))' | awk '{print $NF}')"
kill -KILL "$PID_r1"
killed_at=$(date +%s)
curl -sf -X POST "$URL_B/_sim/billing/records?count=25" >/dev/null
fresh() {
  local ts
  ts=$(vmq 'max(timestamp(usage_source_up{source="ha-bill"}))' | awk '{print int($NF)}')
  [ -n "$ts" ] && [ "$ts" -ge $((killed_at + 3)) ]
}
it_assert "after kill -9 of one replica the series go on from the other" it_until 60 fresh
it_assert "... and the new records are counted once" it_until 60 store_matches $HA_SPECS

# --- politeness per account, across all shards ------------------------------
cat >"$IT_DIR/rate.py" <<'PY'
import sys
starts = sorted(float(l.split()[0]) for l in open(sys.argv[1]) if "/rws/" in l)
worst, j = 0, 0
for i, t in enumerate(starts):
    while starts[j] <= t - 1.0:
        j += 1
    worst = max(worst, i - j + 1)
print(len(starts), worst)
PY
read -r n worst <<<"$(python3 "$IT_DIR/rate.py" "$IT_DIR/sim-A.log")"
it_log "account A (3 Jasper blocks on 3 shards): $n requests, at most $worst in any second"
it_assert "account A: at most 5 Jasper requests in any second across the shards" [ "$worst" -le 5 ]
it_assert "account A: enough requests to tell" [ "$n" -ge 20 ]
read -r n worst <<<"$(python3 "$IT_DIR/rate.py" "$IT_DIR/sim-C.log")"
it_log "account C (one Jasper block on an HA pair): $n requests, at most $worst in any second"
it_assert "account C: at most 5 Jasper requests in any second across both replicas" [ "$worst" -le 5 ]
it_assert_eq "the simulators' own limiters answered no 429" "0 0" \
  "$(for s in "$URL_A" "$URL_C"; do curl -sf "$s/_sim/requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rateLimited"])'; done | xargs)"
it_done
