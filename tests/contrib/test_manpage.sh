#!/bin/bash
# test_manpage: usage(5) lints clean with mandoc (warnings and worse), has
# the sections users look for, and documents every option the
# configuration parser accepts.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
page="$top_srcdir/man/usage.5"
pass=0
fail=0
check() {
  if [ "$2" = ok ]; then
    echo "ok - $1"
    pass=$((pass + 1))
  else
    echo "not ok - $1"
    fail=$((fail + 1))
  fi
}
if ! command -v mandoc >/dev/null; then
  echo "SKIP: mandoc not installed"
  exit 77
fi
out=$(mandoc -Tlint -W warning "$page" 2>&1)
[ -z "$out" ] && check "mandoc -Tlint -W warning is clean" ok ||
  { echo "$out"; check "mandoc -Tlint -W warning is clean" no; }
for s in NAME SYNOPSIS DESCRIPTION METRICS "COLLECTD IDENTIFIERS" EXAMPLES FILES "SEE ALSO"; do
  grep -q "^\.Sh $s\$" "$page" && check "section $s" ok || check "section $s" no
done
# Every option name the parser compares against is documented.
missing=
for k in $(grep -oh 'strcasecmp([a-z>-]*key, "[A-Za-z]*")' "$top_srcdir"/src/config*.c "$top_srcdir"/src/api/*/conf.c |
  grep -o '"[A-Za-z]*"' | tr -d '"' | sort -u); do
  case $k in CCC | Billing | Jasper | Exporter) continue ;; esac
  grep -q "^\.It Cm $k\b" "$page" || missing="$missing $k"
done
[ -z "$missing" ] && check "every option is documented" ok ||
  { echo "# undocumented:$missing"; check "every option is documented" no; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
