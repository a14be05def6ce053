#!/bin/sh
# run-fuzz.sh: builds the libFuzzer harnesses of tests/fuzz with clang
# (-fsanitize=fuzzer,address,undefined; the sources they need compiled
# again, never the gcc-built libusagecore) and runs each for FUZZ_SECONDS on
# a fresh copy of its seed corpus. Called by `make fuzz`, which passes the
# flags and libraries in the environment:
#   FUZZ_CC, FUZZ_SECONDS, FUZZ_JOBS, FUZZ_HARNESSES (names, default all)
#   FUZZ_VERSION (PACKAGE_VERSION), FUZZ_CPPFLAGS (the package flags)
#   FUZZ_GLUE_CPPFLAGS (collectd's include directories, for fuzz_config)
#   FUZZ_CORE_SRCS, FUZZ_GLUE_SRCS (paths under the source tree)
#   FUZZ_LIBS
# Usage: run-fuzz.sh SRCDIR OUTDIR. Prints one line per harness and writes
# OUTDIR/NAME.trs (automake's test-result format) for tests/run-all.sh.
# Exit status 1 when a build failed or a harness found a crash, a leak or a
# timeout (the input is kept in OUTDIR/artifacts/).
set -eu

src=$1
out=$2
cc=${FUZZ_CC:-clang}
seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-2}
all="billing_page billing_state jasper_page ccc ccc_state json
exporter_headers config login"
harnesses=${FUZZ_HARNESSES:-$all}
flags="-gline-tables-only -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
-fno-sanitize-recover=undefined"

command -v "$cc" >/dev/null || {
  echo "fuzz: $cc not found (install clang and libclang-rt-14-dev)" >&2
  exit 1
}
mkdir -p "$out/obj/core" "$out/obj/glue" "$out/artifacts"
# The one define of configure's the sources use, without quoting trouble.
printf '#define PACKAGE_VERSION "%s"\n' "${FUZZ_VERSION:-0}" >"$out/defs.h"
FUZZ_CPPFLAGS="-include $out/defs.h $FUZZ_CPPFLAGS"

# compile DIR EXTRA_FLAGS FILE...: objects of the sources into DIR, two at a
# time; the archive of the core lets each harness take only what it needs.
compile() {
  dir=$1 extra=$2
  shift 2
  for f in "$@"; do
    case $f in *.c) echo "$f" ;; esac
  done | xargs -P "$jobs" -I{} sh -c '
    o=$0/$(echo "{}" | tr / _ | sed "s/\.c\$/.o/")
    exec $1 $2 -fsanitize=fuzzer-no-link $3 -I"$4/src" -c "$4/{}" -o "$o"' \
    "$dir" "$cc" "$flags" "$extra $FUZZ_CPPFLAGS" "$src"
}

echo "fuzz: compiling the sources with $cc"
rm -f "$out"/obj/core/*.o "$out"/obj/glue/*.o "$out/libfuzzcore.a"
# shellcheck disable=SC2086
compile "$out/obj/core" "" $FUZZ_CORE_SRCS
ar rcs "$out/libfuzzcore.a" "$out"/obj/core/*.o
# shellcheck disable=SC2086
compile "$out/obj/glue" "$FUZZ_GLUE_CPPFLAGS" $FUZZ_GLUE_SRCS \
  tests/unit/collectd_stubs.c

status=0
for h in $harnesses; do
  name=fuzz_$h
  extra= objs= ldextra=
  if [ "$h" = config ]; then
    extra=$FUZZ_GLUE_CPPFLAGS
    objs=$(ls "$out"/obj/glue/*.o)
    ldextra=-Wl,--wrap=usage_exporter_check_hash
  fi
  rm -f "$out/$name.trs" "$out/$name.log"
  # shellcheck disable=SC2086
  if ! $cc $flags -fsanitize=fuzzer $extra $FUZZ_CPPFLAGS -I"$src/src" \
    "$src/tests/fuzz/$name.c" $objs "$out/libfuzzcore.a" $ldextra \
    $FUZZ_LIBS -o "$out/$name" 2>"$out/$name.log"; then
    cat "$out/$name.log" >&2
    echo "$name: build failed"
    printf ':test-result: FAIL\n' >"$out/$name.trs"
    status=1
    continue
  fi
  rm -rf "$out/corpus/$name"
  mkdir -p "$out/corpus/$name"
  cp "$src/tests/fuzz/corpus/$h"/* "$out/corpus/$name/"
  rc=0
  "$out/$name" -max_len=65536 -max_total_time="$seconds" -timeout=25 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$name-" "$out/corpus/$name" \
    >>"$out/$name.log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$name.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$name.log")
  if [ "$rc" -eq 0 ]; then
    echo "$name: ${execs:-?} executions (${rate:-?}/s) in ${seconds}s, no crash"
    printf ':test-result: PASS\n' >"$out/$name.trs"
  else
    echo "$name: ${execs:-?} executions, FAILED (exit $rc):"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' \
      "$out/$name.log" | head -n 5 | sed 's/^/  /'
    printf ':test-result: FAIL\n' >"$out/$name.trs"
    status=1
  fi
done
exit $status
