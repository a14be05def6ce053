#!/usr/bin/env bash
# run-all.sh: every test of the usage plugin, from a fresh build. Debian 12,
# as root (it installs the packages of contrib/debian-packages.txt when one
# is missing). Runs, in a new out-of-tree build directory:
#   make check            unit tests and integration tests (real collectd)
#   make check-sanitize   the unit tests again under ASan and UBSan
#   make check-tsan       the concurrency tests under ThreadSanitizer
#   make fuzz             each libFuzzer harness for 20 seconds
#   make distcheck        the release tarball builds and passes its unit
#                         tests and one end-to-end test
# and ends with the line "N passed, N failed" over all the runs. Exit
# status 0 only when nothing failed.
#
# Environment: BUILD_DIR (default ./_build/tests; emptied first), JOBS
# (parallel make jobs, default the number of CPUs).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$top/_build/tests}
jobs=${JOBS:-$(nproc)}

say() { printf '\n=== %s\n' "$*"; }

# --- dependencies ------------------------------------------------------------
missing=()
while read -r pkg _; do
  case $pkg in '' | '#'*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$pkg")
done <"$top/contrib/debian-packages.txt"
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "run-all: missing packages (run as root to install them): ${missing[*]}" >&2
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# --- build ---------------------------------------------------------------------
say "autoreconf"
if command -v flock >/dev/null; then
  # Serialise with another autoreconf of the same tree.
  (cd "$top" && flock "${AUTORECONF_LOCK:-/tmp/autoreconf.lock}" autoreconf -fi)
else
  (cd "$top" && autoreconf -fi)
fi
rm -rf "$build"
mkdir -p "$build"
cd "$build"
say "configure in $build"
"$top/configure" -q
say "make"
make -s -j"$jobs"

# --- tests ---------------------------------------------------------------------
passed=0
failed=0
skipped=0
failed_logs=()

# count_trs DIR RUN: add the results of the .trs files under DIR.
count_trs() {
  local p f s
  p=$(find "$1" -name '*.trs' -exec grep -h '^:test-result:' {} + 2>/dev/null |
    grep -cE ':test-result: (PASS|XFAIL)' || true)
  f=$(find "$1" -name '*.trs' -exec grep -h '^:test-result:' {} + 2>/dev/null |
    grep -cE ':test-result: (FAIL|XPASS|ERROR)' || true)
  s=$(find "$1" -name '*.trs' -exec grep -h '^:test-result:' {} + 2>/dev/null |
    grep -c ':test-result: SKIP' || true)
  printf '%s: %d passed, %d failed, %d skipped\n' "$2" "$p" "$f" "$s"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
}

# run_step NAME DIR TARGET [MAKE-ARGS...]: run make TARGET (its output also
# goes to $build/TARGET.out) and count the tests that ran under DIR. When
# make failed without a failed test (a build error), the step counts as one
# failure.
# distcheck deletes its tree when it succeeds, so its tests are counted from
# the summaries it printed instead.
run_step() {
  local name=$1 dir=$2 target=$3 before=$failed rc=0 out=$build/$3.out
  shift 3
  say "$name"
  make -j"$jobs" "$target" "$@" 2>&1 | tee "$out" || rc=$?
  if [ "$target" = distcheck ]; then
    count_summary "$out" "$name"
  else
    count_trs "$dir" "$name"
  fi
  [ "$rc" -eq 0 ] && return 0
  [ "$failed" -gt "$before" ] || failed=$((failed + 1))
  local logs
  logs=$(find "$dir" -name test-suite.log 2>/dev/null |
    xargs -r grep -l '^\(FAIL\|ERROR\|XPASS\):' 2>/dev/null || true)
  if [ -n "$logs" ]; then
    while IFS= read -r log; do failed_logs+=("$log"); done <<<"$logs"
  else
    failed_logs+=("$out")
  fi
}

# count_summary FILE RUN: add the "# PASS: N" ... lines of automake's
# summaries in FILE.
count_summary() {
  local p=0 f=0 s=0 kind n
  while read -r _ kind n; do
    case $kind in
    PASS: | XFAIL:) p=$((p + n)) ;;
    FAIL: | XPASS: | ERROR:) f=$((f + n)) ;;
    SKIP:) s=$((s + n)) ;;
    esac
  done < <(grep -E '^# (PASS|XFAIL|FAIL|XPASS|ERROR|SKIP): +[0-9]+$' "$1" || true)
  printf '%s: %d passed, %d failed, %d skipped\n' "$2" "$p" "$f" "$s"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
}

run_step "make check" "$build" check
run_step "make check-sanitize" "$build/_sanitize" check-sanitize
if grep -q '^check-tsan:' Makefile; then
  run_step "make check-tsan" "$build/_tsan" check-tsan
fi
# One harness a test (the .trs files of _fuzz/): a crash, leak or timeout is
# a failure. After check, whose count takes every .trs under $build.
run_step "make fuzz" "$build/_fuzz" fuzz FUZZ_SECONDS=20
distdir=$(sed -n 's/^PACKAGE = //p' Makefile)-$(sed -n 's/^VERSION = //p' Makefile)
# The tarball's unit tests: the model-based tests with a quarter of their
# histories (make check above ran all of them).
run_step "make distcheck" "$build/$distdir" distcheck \
  BILLING_MODEL_SEEDS=500 JASPER_MODEL_SEEDS=500 CCC_MODEL_SEEDS=500

# --- summary -------------------------------------------------------------------
for log in "${failed_logs[@]+"${failed_logs[@]}"}"; do
  say "$log"
  if [ "${log##*.}" = out ]; then
    tail -n 60 "$log"
  else
    cat "$log"
  fi
done
echo
[ "$skipped" -eq 0 ] || echo "($skipped skipped)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
