#!/bin/bash
# test_prometheus_rules: the Prometheus rules of contrib/prometheus/ pass
# `promtool check rules` without a warning, their unit tests
# (prometheus/*_test.yml) pass `promtool test rules`, and those tests cover
# every rule: each alert is shown both firing and not firing, each
# recording rule's value is checked; every metric the rules read is in
# CONTRACT.md's table (tests/contrib/contract-metrics.md). Skipped (77)
# without promtool.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
PROMTOOL=${PROMTOOL:-}
[ -n "$PROMTOOL" ] || PROMTOOL=$(command -v promtool 2>/dev/null || true)
if [ -z "$PROMTOOL" ]; then
  echo "SKIP: promtool not found (install prometheus)"
  exit 77
fi
rules=$top_srcdir/contrib/prometheus
tests=$top_srcdir/tests/contrib/prometheus
contract=${CONTRACT:-$top_srcdir/tests/contrib/contract-metrics.md}
fail=0
ok() { echo "ok - $1"; }
nok() { echo "not ok - $1"; fail=$((fail + 1)); }

for f in usage-alerts.yml usage-recording.yml usage-allowances.yml; do
  out=$("$PROMTOOL" check rules "$rules/$f" 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ] && ! grep -qi -e warn -e lint <<<"$out"; then
    ok "promtool check rules $f"
  else
    nok "promtool check rules $f"
    printf '%s\n' "$out" | sed 's/^/#   /'
  fi
done

# promtool resolves rule_files relative to the test file.
for t in alerts_test.yml recording_test.yml; do
  if out=$(cd "$tests" && "$PROMTOOL" test rules "$t" 2>&1); then
    ok "promtool test rules $t"
  else
    nok "promtool test rules $t"
    printf '%s\n' "$out" | sed 's/^/#   /'
  fi
done

if out=$(python3 - "$rules" "$tests" "$contract" <<'PY'
import re, sys
rules, tests, contract = sys.argv[1], sys.argv[2], sys.argv[3]
def names(path, key):
    return re.findall(r'^\s*- %s:\s*(\S+)' % key, open(path).read(), re.M)
bad = []
# Alerts: split the test file into alert_rule_test items.
text = open(tests + "/alerts_test.yml").read()
items = re.split(r'^\s*- alertname:\s*', text, flags=re.M)[1:]
firing, quiet = set(), set()
for it in items:
    name = it.split()[0]
    body = re.split(r'^\s*(?:- alertname:|- interval:)', it, flags=re.M)[0]
    (firing if 'exp_alerts:' in body else quiet).add(name)
for a in names(rules + "/usage-alerts.yml", "alert"):
    if a not in firing: bad.append("alert %s is never shown firing" % a)
    if a not in quiet: bad.append("alert %s is never shown not firing" % a)
checked = set(re.findall(r'^\s*- expr:\s*([A-Za-z_:][A-Za-z0-9_:]*)',
                         open(tests + "/recording_test.yml").read(), re.M))
for r in names(rules + "/usage-recording.yml", "record"):
    if r not in checked: bad.append("recording rule %s is not checked" % r)
# Every metric the rules read is one of CONTRACT.md's families (a name
# after ":" is part of a recording rule's name, not a metric).
known = set(re.findall(r"^\|\s*`(usage_[a-z0-9_]+)`\s*\|",
                       open(contract).read(), re.M))
for f in ("usage-alerts.yml", "usage-recording.yml"):
    for e in re.findall(r"^\s*expr:\s*(\|?.*(?:\n\s{10,}.*)*)",
                        open(rules + "/" + f).read(), re.M):
        e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)
        for n in re.findall(r"(?<![:\w])(usage_[a-z0-9_]+)\b", e):
            if n not in known: bad.append("%s: %s is not in CONTRACT.md" % (f, n))
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
); then
  ok "the unit tests cover every alert (firing and not) and recording rule; metric names are CONTRACT.md's"
else
  nok "rule coverage"
  printf '%s\n' "$out" | sed 's/^/#   /'
fi
[ "$fail" -eq 0 ]
