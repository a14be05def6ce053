#!/usr/bin/env bash
# demo.sh: build the usage plugin and run it in a real collectd against the
# bundled API simulator (usage-sim), with the Prometheus exporter on.
# Debian 12, as root (it installs the packages of contrib/debian-packages.txt
# when one is missing).
#
#   bash contrib/demo.sh               run until Ctrl-C
#   bash contrib/demo.sh --background  leave collectd and the simulator running
#   bash contrib/demo.sh --stop        stop what --background left running
#   bash contrib/demo.sh --check       start, check /metrics, stop (exit status)
#
# Environment: BUILD_DIR (default ./_build/demo), DEMO_PORT (the exporter's
# port; default 19813, or the next free port).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$top/_build/demo}
run=$build/run
mode=${1:-run}
case $mode in
run | --background | --check | --stop) ;;
*)
  sed -n '2,13s/^# \{0,1\}//p' "$0" >&2
  exit 2
  ;;
esac

say() { printf 'demo: %s\n' "$*"; }
die() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}

stop_pidfile() { # stop_pidfile FILE: TERM the process, wait up to 10 s
  local pid
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  rm -f "$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_all() {
  stop_pidfile "$run/collectd.pid.demo"
  stop_pidfile "$run/sim.pid"
}

if [ "$mode" = --stop ]; then
  stop_all
  say "stopped"
  exit 0
fi

# --- dependencies ------------------------------------------------------------
missing=()
while read -r pkg _; do
  case $pkg in '' | '#'*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$pkg")
done <"$top/contrib/debian-packages.txt"
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing packages (run as root to install them): ${missing[*]}"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# --- build ---------------------------------------------------------------------
if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ] ||
  [ "$top/Makefile.am" -nt "$top/Makefile.in" ]; then
  say "autoreconf"
  (cd "$top" && autoreconf -fi >/dev/null)
fi
mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
  say "configure in $build"
  (cd "$build" && "$top/configure" -q)
fi
say "make"
make -C "$build" -s -j"$(nproc)" >/dev/null
plugin=$build/.libs/usage.so
[ -f "$plugin" ] || die "$plugin was not built"
[ -x "$build/usage-sim" ] || die "$build/usage-sim was not built"

# --- run directory ---------------------------------------------------------------
stop_all # a previous --background run
rm -rf "$run"
mkdir -p "$run/plugins" "$run/csv"
# collectd loads regular files only (no symlinks) from PluginDir.
cp "$plugin" /usr/lib/collectd/logfile.so /usr/lib/collectd/csv.so "$run/plugins/"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the simulator -------------------------------------------------------------
# setsid: a hang-up of the terminal does not reach them in --background.
setsid "$build/usage-sim" --port 0 --port-file "$run/sim.port" --seed 1 \
  >"$run/sim.log" 2>&1 </dev/null &
echo $! >"$run/sim.pid"
sim_port=
for _ in $(seq 100); do
  sim_port=$(grep -o '[0-9]\+' "$run/sim.port" 2>/dev/null | head -n1 || true)
  [ -n "$sim_port" ] && break
  kill -0 "$(cat "$run/sim.pid")" 2>/dev/null || die "usage-sim exited: $(cat "$run/sim.log")"
  sleep 0.1
done
[ -n "$sim_port" ] || die "usage-sim did not report its port within 10 s"
sim=http://127.0.0.1:$sim_port
say "API simulator on $sim"

services=$(curl -sf --max-time 10 "$sim/_sim/ccc/services" |
  python3 -c 'import json, sys
for s in json.load(sys.stdin):
    print("    <Service \"%s\">   # %s, %s" % (s["serviceGuid"], s["name"], s["status"]))
    for u in s.get("userGuids", []):
        print("      UserGuid \"%s\"" % u)
    print("    </Service>")') ||
  die "cannot list the simulator's CCC services"
[ -n "$services" ] || die "the simulator has no CCC service"
rate_plans=$(curl -sf --max-time 10 "$sim/_sim/jasper/plans" |
  python3 -c 'import json, sys
for p in json.load(sys.stdin):
    if p.get("kind") == "normal":
        print("    RatePlan \"%s\"" % p["ratePlanName"])') ||
  die "cannot list the simulator's rate plans"
printf 'sim-billing-token\n' >"$run/billing.token"
printf 'sim-key\n' >"$run/jasper.key"
chmod 600 "$run/billing.token" "$run/jasper.key"

# --- the exporter port -----------------------------------------------------------
port_free() {
  python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}
port=${DEMO_PORT:-19813}
for _ in $(seq 100); do
  port_free "$port" && break
  port=$((port + 1))
done
port_free "$port" || die "no free port from ${DEMO_PORT:-19813} on"

# --- collectd ------------------------------------------------------------------
cat >"$run/collectd.conf" <<EOF
# Written by contrib/demo.sh
Hostname "demo"
FQDNLookup false
BaseDir "$run"
PIDFile "$run/collectd.pid"
PluginDir "$run/plugins"
TypesDB "/usr/share/collectd/types.db"
Interval 10

LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$run/collectd.log"
  Timestamp true
</Plugin>

LoadPlugin csv
<Plugin csv>
  DataDir "$run/csv"
</Plugin>

LoadPlugin usage
<Plugin usage>
  <Exporter>
    Address "127.0.0.1"
    Port "$port"
  </Exporter>
  <CCC "demo">
    URL "$sim"
$services
    StatusChanges true
    StateFile "$run/ccc.state"
    MaxConcurrentRequests 4
    Interval 10
  </CCC>
  <Billing "demo-billing">
    URL "$sim"
    BearerTokenFile "$run/billing.token"
    StateFile "$run/billing.state"
    Interval 10
  </Billing>
  <Jasper "demo-iot">
    URL "$sim"
    User "sim-user"
    PasswordFile "$run/jasper.key"
$rate_plans
    PerDevice true
    Interval 10
  </Jasper>
</Plugin>
EOF

setsid collectd -f -C "$run/collectd.conf" >"$run/collectd.out" 2>&1 </dev/null &
echo $! >"$run/collectd.pid.demo"
url=http://127.0.0.1:$port
up=
for _ in $(seq 60); do
  # One usage_source_up per block: every block finished its first scrape.
  n=$(curl -sf --max-time 2 "$url/metrics" 2>/dev/null | grep -c '^usage_source_up{' || true)
  if [ "${n:-0}" -ge 3 ]; then
    up=1
    break
  fi
  kill -0 "$(cat "$run/collectd.pid.demo")" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$up" ]; then
  tail -n 20 "$run/collectd.out" "$run/collectd.log" >&2 2>/dev/null || true
  die "collectd did not publish usage_source_up within 30 s (logs above)"
fi

cat <<EOF

The usage plugin runs in collectd, scraping the simulator every 10 s
(<CCC "demo">, <Billing "demo-billing">, <Jasper "demo-iot">):
  metrics       $url/metrics      (curl -s $url/metrics | grep ^usage_)
  status page   $url/
  collectd log  $run/collectd.log
  csv files     $run/csv/demo/   (usage-demo, usage-demo-billing, usage-demo-iot)
  config        $run/collectd.conf
  simulator     $sim   (log: $run/sim.log)

EOF
curl -sf --max-time 5 "$url/metrics" | grep -E '^usage_source_up[{ ]' || true
echo

case $mode in
--check)
  say "ok"
  exit 0
  ;;
--background)
  trap - EXIT INT TERM
  say "running in the background; stop with:" \
    "${BUILD_DIR:+BUILD_DIR=$BUILD_DIR }bash $top/contrib/demo.sh --stop"
  exit 0
  ;;
esac
say "press Ctrl-C to stop"
collectd_pid=$(cat "$run/collectd.pid.demo")
while kill -0 "$collectd_pid" 2>/dev/null; do
  sleep 1
done
die "collectd exited; see $run/collectd.log and $run/collectd.out"
