#!/bin/bash
# test_dashboard: offline checks of the Grafana dashboard (see
# check_dashboard.py). Skipped (77) without promtool.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
PROMTOOL=${PROMTOOL:-}
[ -n "$PROMTOOL" ] || PROMTOOL=$(command -v promtool 2>/dev/null || true)
if [ -z "$PROMTOOL" ]; then
  echo "SKIP: promtool not found (install prometheus)"
  exit 77
fi
# CONTRACT.md's metric table, copied into the tree.
CONTRACT=${CONTRACT:-$top_srcdir/tests/contrib/contract-metrics.md}
exec python3 "$top_srcdir/tests/contrib/check_dashboard.py" \
  "$top_srcdir/contrib/grafana/usage-dashboard.json" "$CONTRACT" "$PROMTOOL" \
  "$top_srcdir/contrib/grafana/make_dashboard.py"
