#!/bin/bash
# bench_exporter.sh: serving cost of our exporter, side by side with
# collectd's write_prometheus holding the same number of series and with a
# bare libmicrohttpd handler serving a static body of the same size (the
# floor). Loopback only; bounded in time (write_prometheus is fed through
# the unixsock plugin with PUTVAL and given at most WP_FEED_LIMIT seconds
# per size; 1M series are skipped for it unless WP_SIZES says otherwise).
#   SIZES="10000 100000 1000000" WP_SIZES="10000 100000" SCRAPES=20
# (WP_SIZES= : write_prometheus left out)
# Exits non-zero when a step fails (each failure named on stderr); ratios
# of our exporter to the floor and to write_prometheus are taken within
# one run (key=value lines "ratio series=N ...").
set -u
top_builddir=${top_builddir:-$(pwd)}
BENCH="$top_builddir/bench_exporter"
COLLECTD=${COLLECTD:-$(command -v collectd || echo /usr/sbin/collectd)}
STOCK=${STOCK_PLUGINS:-/usr/lib/collectd}
SIZES=${SIZES:-10000 100000 1000000}
WP_SIZES=${WP_SIZES-10000 100000} # empty: none
SCRAPES=${SCRAPES:-20}
WP_FEED_LIMIT=${WP_FEED_LIMIT:-240}
DIR=$(mktemp -d /tmp/bench-exporter.XXXXXX)
CD_PID=
cleanup() {
  [ -n "$CD_PID" ] && kill "$CD_PID" 2>/dev/null && wait "$CD_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proc_cpu_ms() { awk '{print ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
proc_rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# wp N: collectd + write_prometheus holding N series.
wp() {
  local n=$1 port
  port=$(free_port)
  mkdir -p "$DIR/plugins"
  cp "$STOCK/write_prometheus.so" "$STOCK/unixsock.so" "$DIR/plugins/"
  cat >"$DIR/collectd.conf" <<CONF
Interval 3600
BaseDir "$DIR"
PIDFile "$DIR/collectd.pid"
PluginDir "$DIR/plugins"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin unixsock
<Plugin unixsock>
  SocketFile "$DIR/sock"
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host "127.0.0.1"
  Port "$port"
</Plugin>
CONF
  "$COLLECTD" -f -C "$DIR/collectd.conf" >"$DIR/collectd.out" 2>&1 &
  CD_PID=$!
  for _ in $(seq 50); do [ -S "$DIR/sock" ] && break; sleep 0.1; done
  # Feed N gauges (names shaped like ours: a service and a user GUID), then
  # time until a scrape shows the last one.
  local feed
  feed=$(python3 - "$DIR/sock" "$n" "$port" "$WP_FEED_LIMIT" <<'PY'
import socket, sys, time, urllib.request
path, n, port, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_UNIX); s.connect(path)
f = s.makefile("rwb", buffering=1 << 20)
t0 = time.monotonic()
sent = 0
def name(i):
    return "bench/usage-acme/gauge-%08x%024x" % (i, i * 2654435761)
for start in range(0, n, 1000):
    if time.monotonic() - t0 > limit:
        break
    for i in range(start, min(n, start + 1000)):
        f.write(b'PUTVAL "%s" interval=3600 N:%d\n' % (name(i).encode(), i % 100003))
    f.flush()
    for i in range(start, min(n, start + 1000)):
        f.readline()
    sent = min(n, start + 1000)
fed = time.monotonic() - t0
last = ("%08x%024x" % (sent - 1, (sent - 1) * 2654435761)).encode()
visible = None
while time.monotonic() - t0 < limit + 60:
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=60).read()
    if last in body:
        visible = time.monotonic() - t0
        break
    time.sleep(0.2)
print("sent=%d feed_s=%.1f visible_s=%s" % (sent, fed, "%.1f" % visible if visible else "never"))
PY
)
  local c0 c1 out
  c0=$(proc_cpu_ms "$CD_PID")
  if ! out=$("$BENCH" client "$port" "$SCRAPES") || [ -z "$out" ]; then
    echo "FAIL: write_prometheus client, $n series" >&2
    FAILED=1
    kill "$CD_PID" 2>/dev/null
    wait "$CD_PID" 2>/dev/null
    CD_PID=
    return
  fi
  c1=$(proc_cpu_ms "$CD_PID")
  set -- $out
  if [ "${1:--1}" -le 0 ]; then
    echo "FAIL: write_prometheus, $n series: no body ($feed); WP_SIZES= skips it" >&2
    tail -5 "$DIR/collectd.out" >&2
    FAILED=1
    kill "$CD_PID" 2>/dev/null
    wait "$CD_PID" 2>/dev/null
    CD_PID=
    return
  fi
  local gz
  gz=$(curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/metrics")
  WP_CPU=$(echo "($c1 - $c0) / $SCRAPES" | bc -l)
  printf 'wp      series=%s cpu_ms=%.2f p50_ms=%s p99_ms=%s body=%s gzip_body=%s(no gzip) rss_mb=%s %s\n' \
    "$n" "$WP_CPU" "$2" "$3" "$1" "$gz" \
    "$(proc_rss_mb "$CD_PID")" "$feed"
  kill "$CD_PID" 2>/dev/null
  wait "$CD_PID" 2>/dev/null
  CD_PID=
  WP_BODY=$1
}

# figure KEY LINE: the number after KEY= in LINE.
figure() { echo "$2" | sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p"; }

FAILED=0
echo "# cpu_ms: server CPU per scrape; p50/p99: scrape latency (loopback);"
echo "# body: bytes plain / gzip; visible_s: commit (or first PUTVAL) until a scrape shows the new series"
for n in $SIZES; do
  echo "## $n series"
  if ! line=$("$BENCH" usage "$n" "$SCRAPES") || [ -z "$line" ]; then
    echo "FAIL: bench_exporter usage $n" >&2
    FAILED=1
    continue
  fi
  echo "$line"
  body=$(figure body "$line")
  if ! floor=$("$BENCH" static "$body" "$SCRAPES") || [ -z "$floor" ]; then
    echo "FAIL: bench_exporter static $body" >&2
    FAILED=1
    continue
  fi
  echo "$floor"
  ratio="ratio series=$n usage_over_static_cpu=$(printf %.3f "$(echo "$(figure cpu_ms "$line") / $(figure cpu_ms "$floor")" | bc -l)")"
  WP_CPU=
  case " $WP_SIZES " in
  *" $n "*)
    if [ ! -x "$COLLECTD" ] || [ ! -f "$STOCK/write_prometheus.so" ]; then
      echo "FAIL: write_prometheus, $n series: no $COLLECTD or $STOCK/write_prometheus.so; WP_SIZES= skips it" >&2
      FAILED=1
    else
      wp "$n"
    fi
    ;;
  *) echo "wp      series=$n skipped (WP_SIZES; feeding it takes too long)" ;;
  esac
  [ -n "$WP_CPU" ] && ratio="$ratio usage_over_wp_cpu=$(printf %.3f "$(echo "$(figure cpu_ms "$line") / $WP_CPU" | bc -l)")"
  echo "$ratio"
done
exit "$FAILED"
