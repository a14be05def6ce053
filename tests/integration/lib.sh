# lib.sh: helpers for the integration tests. They run the real collectd
# daemon with the freshly built usage.so, the API simulator and the
# exporter, all on 127.0.0.1, with bounded waits. Sourced by test_*.sh.
#
#   it_setup NAME                 temp dir $IT_DIR, cleanup trap; exit 77
#                                 (skip) without collectd
#   it_start_sim [ARGS...]        start usage-sim on a free port: $SIM_URL
#   it_start_collectd FILE        run collectd; FILE holds the inside of
#                                 <Plugin usage> without <Exporter>, which is
#                                 added on a free port: $METRICS_URL
#   it_metrics                    fetch /metrics into $IT_DIR/last.prom
#   it_value SEL / it_sum SEL     a sample's value / the sum over a selector
#   it_wait_metric SEL [S]        wait until the sample exists
#   it_wait_value SEL VALUE [S]   wait until the sample has that value
#   it_csv_last PI TYPE-TI        last value collectd's csv plugin wrote
#   it_stop_collectd / it_kill_collectd
#   it_promtool_check             promtool check metrics on live /metrics
#   it_assert_eq WHAT EXPECTED ACTUAL ; it_assert WHAT CMD... ; it_done
#   IT_EXPORTER_EXTRA             more lines for the <Exporter> block
#   IT_CURL_OPTS                  curl options for it_metrics (TLS, auth)
set -u

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
COLLECTD=${COLLECTD:-}
[ -n "$COLLECTD" ] || COLLECTD=$(command -v collectd 2>/dev/null || echo /usr/sbin/collectd)
PROMTOOL=${PROMTOOL:-}
[ -n "$PROMTOOL" ] || PROMTOOL=$(command -v promtool 2>/dev/null || true)
STOCK_PLUGINS=${STOCK_PLUGINS:-/usr/lib/collectd}
IT_PASS=0
IT_FAIL=0
IT_INTERVAL=${IT_INTERVAL:-1}
COLLECTD_PID=
SIM_PID=
PROM_PY="$top_srcdir/tests/integration/prom.py"

it_log() { printf '# %s\n' "$*"; }

it_cleanup() {
  local rc=$?
  [ -n "$COLLECTD_PID" ] && it_stop_collectd
  if [ -n "$SIM_PID" ]; then
    kill "$SIM_PID" 2>/dev/null
    wait "$SIM_PID" 2>/dev/null
  fi
  if [ "$IT_FAIL" -gt 0 ] || [ "$rc" -ne 0 -a "$rc" -ne 77 ]; then
    it_log "collectd log (tail):"
    tail -n 40 "$IT_DIR/collectd.log" 2>/dev/null | sed 's/^/#   /'
    tail -n 20 "$IT_DIR/collectd.out" 2>/dev/null | sed 's/^/#   /'
  fi
  [ -n "${KEEP_IT:-}" ] || rm -rf "$IT_DIR"
}

it_setup() {
  IT_NAME=$1
  if [ ! -x "$COLLECTD" ]; then
    echo "SKIP: collectd daemon not found (install collectd-core)"
    exit 77
  fi
  IT_DIR=$(mktemp -d "/tmp/usage-it-$IT_NAME.XXXXXX")
  trap it_cleanup EXIT
  mkdir -p "$IT_DIR/plugins" "$IT_DIR/csv" "$IT_DIR/bin"
  # python3 is Debian's when it is there: a version manager's shim found
  # first on PATH (pyenv's) costs seconds a call on a busy machine, and the
  # helpers need only the standard library.
  if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
    ln -s /usr/bin/python3 "$IT_DIR/bin/python3"
    PATH="$IT_DIR/bin:$PATH"
  fi
  # collectd loads only regular files from its PluginDir: copy, no links.
  cp "$top_builddir/.libs/usage.so" "$IT_DIR/plugins/" || exit 99
  for p in logfile csv unixsock threshold exec write_log; do
    [ -f "$STOCK_PLUGINS/$p.so" ] && cp "$STOCK_PLUGINS/$p.so" "$IT_DIR/plugins/"
  done
  EXPORTER_PORT=$(it_free_port)
  METRICS_URL="http://127.0.0.1:$EXPORTER_PORT/metrics"
}

it_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# it_until SECONDS CMD...: run CMD every 0.2 s until it succeeds.
it_until() {
  local limit=$1 i=0
  shift
  while [ "$i" -lt $((limit * 5)) ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
    i=$((i + 1))
  done
  return 1
}

it_start_sim() {
  rm -f "$IT_DIR/sim.port"
  "$top_builddir/usage-sim" --address 127.0.0.1 --port 0 \
    --port-file "$IT_DIR/sim.port" "$@" >"$IT_DIR/sim.out" 2>&1 &
  SIM_PID=$!
  it_until 10 test -s "$IT_DIR/sim.port" || {
    echo "the simulator did not start"
    cat "$IT_DIR/sim.out"
    exit 99
  }
  SIM_URL="http://127.0.0.1:$(cat "$IT_DIR/sim.port")"
}

it_write_config() {
  cat >"$IT_DIR/collectd.conf" <<CONF
Interval $IT_INTERVAL
BaseDir "$IT_DIR"
PIDFile "$IT_DIR/collectd.pid"
PluginDir "$IT_DIR/plugins"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$IT_DIR/collectd.log"
  Timestamp true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$IT_DIR/csv"
  StoreRates false
</Plugin>
${IT_EXTRA_CONF:-}
LoadPlugin usage
<Plugin usage>
  <Exporter>
    Address "127.0.0.1"
    Port "$EXPORTER_PORT"
${IT_EXPORTER_EXTRA:-}
  </Exporter>
$(cat "$1")
</Plugin>
CONF
}

it_start_collectd() {
  it_write_config "$1"
  "$COLLECTD" -f -C "$IT_DIR/collectd.conf" >>"$IT_DIR/collectd.out" 2>&1 &
  COLLECTD_PID=$!
  if ! it_until 15 curl -sf ${IT_CURL_OPTS:-} -o /dev/null "$METRICS_URL"; then
    echo "collectd did not start serving $METRICS_URL"
    IT_FAIL=$((IT_FAIL + 1))
    exit 1
  fi
}

it_stop_collectd() {
  [ -n "$COLLECTD_PID" ] || return 0
  kill -TERM "$COLLECTD_PID" 2>/dev/null
  it_until 15 sh -c "! kill -0 $COLLECTD_PID" || kill -KILL "$COLLECTD_PID" 2>/dev/null
  wait "$COLLECTD_PID" 2>/dev/null
  COLLECTD_PID=
}

it_kill_collectd() {
  [ -n "$COLLECTD_PID" ] || return 0
  kill -KILL "$COLLECTD_PID" 2>/dev/null
  wait "$COLLECTD_PID" 2>/dev/null
  COLLECTD_PID=
}

it_metrics() { curl -sf ${IT_CURL_OPTS:-} "$METRICS_URL" -o "$IT_DIR/last.prom"; }
it_value() { it_metrics && python3 "$PROM_PY" value "$IT_DIR/last.prom" "$1"; }
it_sum() { it_metrics && python3 "$PROM_PY" sum "$IT_DIR/last.prom" "$1"; }
it_count() { it_metrics && python3 "$PROM_PY" count "$IT_DIR/last.prom" "$1"; }
it_wait_metric() { it_until "${2:-15}" it_value "$1"; }
it_wait_value() {
  local sel=$1 want=$2 limit=${3:-15}
  it_until "$limit" sh -c '[ "$(python3 "$0" value - "$1" <"$2" 2>/dev/null)" = "$3" ] ||
    { curl -sf $5 "$4" -o "$2" && [ "$(python3 "$0" value "$2" "$1")" = "$3" ]; }' \
    "$PROM_PY" "$sel" "$IT_DIR/last.prom" "$want" "$METRICS_URL" "${IT_CURL_OPTS:-}"
}

# it_csv_last PLUGIN_INSTANCE TYPE-TYPE_INSTANCE
it_csv_last() {
  local f
  f=$(ls "$IT_DIR"/csv/*/"usage-$1"/"$2"-[0-9]*[0-9] 2>/dev/null | tail -n 1)
  [ -n "$f" ] || return 1
  tail -n 1 "$f" | cut -d, -f2 | python3 -c 'import sys; v=float(sys.stdin.read()); print(int(v) if v == int(v) else v)'
}

it_promtool_check() {
  if [ -z "$PROMTOOL" ]; then
    it_log "promtool not found: metrics lint skipped"
    return 0
  fi
  it_metrics || return 1
  "$PROMTOOL" check metrics <"$IT_DIR/last.prom" >"$IT_DIR/promtool.out" 2>&1
  local rc=$?
  cat "$IT_DIR/promtool.out"
  [ "$rc" -eq 0 ] && [ ! -s "$IT_DIR/promtool.out" ]
}

it_assert_eq() {
  if [ "$2" = "$3" ]; then
    echo "ok - $1"
    IT_PASS=$((IT_PASS + 1))
  else
    echo "not ok - $1: expected '$2', got '$3'"
    IT_FAIL=$((IT_FAIL + 1))
  fi
}

it_assert() {
  local what=$1
  shift
  if "$@"; then
    echo "ok - $what"
    IT_PASS=$((IT_PASS + 1))
  else
    echo "not ok - $what"
    IT_FAIL=$((IT_FAIL + 1))
  fi
}

it_done() {
  echo "$IT_PASS passed, $IT_FAIL failed"
  [ "$IT_FAIL" -eq 0 ]
  exit $?
}
