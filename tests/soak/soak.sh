#!/bin/bash
# soak.sh: the soak test of the usage plugin, run by `make soak` (never by
# `make check` or CI). It runs for SOAK_MINUTES (default 60):
#
#   - the API simulator with short-lived tokens (--login --token-ttl 15);
#   - two real collectd daemons loading the built usage.so, each with a CCC
#     block (Preset "ccc" sign-in, status changes, StateFile), a Billing
#     block (form sign-in, StateFile) and a Jasper block (PerDevice), and
#     the exporter: "steady" runs from start to end (its resident memory is
#     the one checked for flatness), "restarted" is killed with kill -9 and
#     started again every few minutes at random points;
#   - faults switched on and off at random (HTTP 500/503/429/401, bodies
#     cut short, HTML, slow, wrong types, empty, JSON nested 100,000 deep,
#     64 MiB bodies; a rate limit; revoked tokens), data growing (billing
#     records at a constant rate of 4 a second, some late: dated 10 to 18
#     minutes back, inside the Lookback; Jasper usage of the same devices;
#     CCC status changes), now and then a new Jasper billing cycle;
#   - the StateFile directory full now and then: it is a small tmpfs filled
#     up with a file when `mount` works here; otherwise it is renamed away
#     for a while (the same `state_file` failure: the directory is missing),
#     never while collectd is restarted;
#   - collectd's resident memory sampled every SOAK_RSS_SECONDS (30) into
#     rss.csv.
#
# At the end faults stop, and once every block had a good scrape:
# every billing counter equals the simulator's sums per group, every Jasper
# zone and device figure its totals, every CCC figure and status-change
# counter what the simulator serves, in both daemons; no billing or CCC
# counter ever went down, across kill -9 too (the StateFile is written
# before figures are published, see usage(5), StateFile); no password,
# token or upstream stack trace is in any log, /metrics or the status page;
# the median (Theil-Sen) slope of the steady daemon's resident memory
# after the warm-up (exactly the first hour in runs of 120 minutes or more;
# else a third of the run, at least 20 minutes, the time the billing window
# of Lookback 1200 takes to fill) is below SOAK_RSS_SLOPE_KB (1024 kB) per
# hour, times 60/SOAK_MINUTES for runs shorter than an hour; runs shorter
# than 30 minutes print the slope after their first third without checking
# it (the memory still rises then). The least-squares slope is printed
# too; a sample taken while a 64 MiB body is in flight would tilt it. The plugin's data at the end of the
# warm-up and at the end (series per source, Jasper devices, billing window
# ids and label sets from the StateFile, CCC status-change GUIDs kept, the
# simulator's records in the window) are logged and in summary.json.
#
# SOAK_ASAN=1: the plugin is built again with AddressSanitizer (in
# _soak_asan/) and collectd runs with libasan preloaded; the final clean
# stop of each daemon must report no leak with a frame in usage.so (the
# memory slope is then printed, not checked: ASan's quarantine grows).
#
# Results (rss.csv, summary.json, logs) are left in _soak/ of the build
# directory. Options: SOAK_MINUTES, SOAK_ASAN, SOAK_SEED, SOAK_RSS_SECONDS,
# SOAK_RSS_SLOPE_KB, SOAK_DIR.
set -eu
: "${top_builddir:=$(pwd)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
export top_builddir top_srcdir
export SOAK_MINUTES=${SOAK_MINUTES:-60}
export SOAK_DIR=${SOAK_DIR:-$top_builddir/_soak}
export SOAK_PLUGIN=$top_builddir/.libs/usage.so
export SOAK_PRELOAD=
if [ -z "${COLLECTD:-}" ]; then
  COLLECTD=$(command -v collectd 2>/dev/null || echo /usr/sbin/collectd)
fi
export COLLECTD
if [ ! -x "$COLLECTD" ]; then
  echo "soak: collectd not found (install collectd-core)" >&2
  exit 1
fi
if [ "${SOAK_ASAN:-0}" = 1 ]; then
  # The plugin only: collectd itself is not instrumented, libasan is
  # preloaded so that the plugin's allocations are tracked from the start.
  a=$top_builddir/_soak_asan
  rm -rf "$a" && mkdir "$a"
  (cd "$a" && "$top_srcdir/configure" -q \
    CFLAGS='-O1 -g -fsanitize=address -fno-omit-frame-pointer' \
    LDFLAGS='-fsanitize=address' && ${MAKE:-make} -s usage.la) >"$a.log" 2>&1 ||
    { tail -n 30 "$a.log"; exit 1; }
  SOAK_PLUGIN=$a/.libs/usage.so
  SOAK_PRELOAD=$(${CC:-gcc} -print-file-name=libasan.so)
  [ -f "$SOAK_PRELOAD" ] || { echo "soak: libasan.so not found" >&2; exit 1; }
fi
exec python3 "$top_srcdir/tests/soak/soak.py"
