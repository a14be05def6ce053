#!/bin/bash
# bench_repeat.sh: run one benchmark RUNS times (default 5) and print each
# figure as min-median-max over the runs. A figure is a key=number token on
# a line whose first word names it (bench_store, jasper_scrape, usage, ...,
# with its bare words and series=, bytes= or pages=N);
# the other lines of the first run are shown as they are. Exits non-zero,
# naming the run, when any run fails or prints no figure at all.
#   RUNS=5 bench_repeat.sh NAME command [args...]
set -u
RUNS=${RUNS:-5}
name=$1
shift
out=$(mktemp /tmp/bench-repeat.XXXXXX)
trap 'rm -f "$out" "$out".*' EXIT
for i in $(seq "$RUNS"); do
  if ! "$@" >"$out.$i" 2>"$out.err"; then
    echo "FAIL: $name: run $i of $RUNS exited non-zero: $*" >&2
    cat "$out.$i" "$out.err" >&2
    exit 1
  fi
done
python3 - "$name" "$RUNS" "$out" <<'PY' || exit 1
import re, statistics, sys
name, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tok = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=(-?[0-9.]+(?:e[-+]?[0-9]+)?)\b')
figures = {}  # (line label, key) -> values over the runs, in first-seen order
for i in range(1, runs + 1):
    for line in open("%s.%d" % (out, i)):
        found = tok.findall(line)
        if not found:
            if i == 1:
                sys.stdout.write(line)
            continue
        # the first word, the bare words after it (a mode) and series=N
        # name a line; the same line of every run is gathered
        words = line.split()
        label = " ".join([words[0]] + [w for w in words[1:] if w.isalpha()] +
                         [k + "=" + v for k, v in found if k in ("series", "bytes", "pages")])
        for k, v in found:
            figures.setdefault((label, k), []).append(float(v))
if not figures:
    print("FAIL: %s: no key=value figures" % name, file=sys.stderr)
    sys.exit(1)
def fmt(x):
    return ("%.0f" % x) if x == int(x) and abs(x) < 1e15 else ("%.4g" % x)
last = None
for (label, k), vs in figures.items():
    if label != last:
        print("%s (min-median-max over %d runs):" % (label, len(vs)))
        last = label
    print("  %s=%s-%s-%s" % (k, fmt(min(vs)), fmt(statistics.median(vs)), fmt(max(vs))))
PY
