#!/usr/bin/env python3
# check_dashboard.py DASHBOARD CONTRACT PROMTOOL [GENERATOR]: offline
# checks of the Grafana dashboard (contrib/grafana/usage-dashboard.json):
# valid JSON ready for file provisioning (no __inputs, a datasource variable
# of type prometheus), unique panel ids, every panel and query on
# ${datasource}, a description and a unit on every panel, every PromQL
# expression accepted by `promtool check rules` (Grafana's variables
# replaced by sample values), and every metric name listed in CONTRACT.md.
# With GENERATOR, the JSON must also equal what the generator writes.
# Prints TAP-like lines; exit status 1 when a check failed.
import json
import os
import re
import subprocess
import sys
import tempfile

dash_path, contract_path, promtool = sys.argv[1:4]
generator = sys.argv[4] if len(sys.argv) > 4 else None
failed = 0


def check(what, problems):
    global failed
    if problems:
        failed += 1
        print("not ok - %s" % what)
        for p in problems[:20]:
            print("#   %s" % p)
    else:
        print("ok - %s" % what)


try:
    text = open(dash_path).read()
    dash = json.loads(text)
    check("valid JSON", [])
except ValueError as e:
    check("valid JSON", [str(e)])
    sys.exit(1)

if generator:
    out = subprocess.run([sys.executable, generator], capture_output=True,
                         text=True)
    check("the JSON is what make_dashboard.py writes",
          [] if out.returncode == 0 and out.stdout == text else
          ["regenerate: python3 contrib/grafana/make_dashboard.py > "
           "contrib/grafana/usage-dashboard.json"])

# Provisioning: no import-time inputs, a datasource variable.
variables = dash.get("templating", {}).get("list", [])
prob = []
if "__inputs" in dash or "__requires" in dash:
    prob.append("__inputs/__requires present: file provisioning needs none")
ds_vars = [v for v in variables if v.get("name") == "datasource"]
if len(ds_vars) != 1 or ds_vars[0].get("type") != "datasource" or \
        ds_vars[0].get("query") != "prometheus":
    prob.append("no variable 'datasource' of type datasource, query prometheus")
for name in ("source", "service", "rate_plan", "zone"):
    v = [v for v in variables if v.get("name") == name]
    if not v or v[0].get("type") != "query" or \
            "label_values(" not in json.dumps(v[0].get("query")):
        prob.append("no label_values query variable '%s'" % name)
check("provisioning-ready: no __inputs, datasource and label variables", prob)

# All panels, also those inside collapsed rows.
all_panels = []
for p in dash.get("panels", []):
    all_panels.append(p)
    all_panels.extend(p.get("panels", []))
ids = [p.get("id") for p in all_panels]
dups = sorted({i for i in ids if ids.count(i) > 1 or i is None}, key=str)
check("%d panels with unique ids" % len(all_panels),
      ["duplicate or missing id %s" % d for d in dups])

DS_UID = "${datasource}"
prob = []
exprs = []  # (where, expr)
for p in all_panels:
    if p.get("type") == "row":
        continue
    where = "panel %s %r" % (p.get("id"), p.get("title"))
    ds = p.get("datasource") or {}
    if ds.get("uid") != DS_UID or ds.get("type") != "prometheus":
        prob.append("%s: datasource %r" % (where, ds))
    targets = p.get("targets") or []
    if not targets:
        prob.append("%s: no query" % where)
    for t in targets:
        tds = t.get("datasource") or {}
        if tds.get("uid") != DS_UID:
            prob.append("%s query %s: datasource %r" % (where, t.get("refId"),
                                                        tds))
        if not t.get("expr"):
            prob.append("%s query %s: no expr" % (where, t.get("refId")))
        else:
            exprs.append(("%s query %s" % (where, t.get("refId")), t["expr"]))
check("every panel and query uses ${datasource}", prob)

prob = []
for p in all_panels:
    if p.get("type") == "row":
        continue
    where = "panel %s %r" % (p.get("id"), p.get("title"))
    if not (p.get("description") or "").strip():
        prob.append("%s: no description" % where)
    if not (p.get("fieldConfig", {}).get("defaults", {}).get("unit")):
        prob.append("%s: no unit" % where)
check("every panel has a description and a unit", prob)

# Variable queries: label_values(SELECTOR, LABEL) -> SELECTOR.
for v in variables:
    if v.get("type") != "query":
        continue
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    m = re.match(r"^\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*$", q or "")
    if m:
        exprs.append(("variable %s" % v["name"], m.group(1)))
    else:
        check("variable %s query is label_values(...)" % v["name"],
              ["got %r" % q])

# Grafana's variables replaced by values PromQL accepts.
SUBST = [("$__rate_interval", "5m"), ("$__range", "1h"),
         ("$__interval", "1m"), ("${datasource}", "x")]
def promql(e):
    for k, v in SUBST:
        e = e.replace(k, v)
    e = e.replace("$topn", "10")
    return re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".*", e)

prob = []
with tempfile.TemporaryDirectory() as tmp:
    rules = os.path.join(tmp, "dashboard-rules.yml")
    with open(rules, "w") as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, (_, e) in enumerate(exprs):
            f.write("      - record: dashboard:expr_%d\n        expr: %s\n"
                    % (i, json.dumps(promql(e))))
    out = subprocess.run([promtool, "check", "rules", rules],
                         capture_output=True, text=True)
    if out.returncode != 0:
        prob.append((out.stdout + out.stderr).strip())
        # Name the expressions promtool refused, one by one.
        for where, e in exprs:
            with open(rules, "w") as f:
                f.write("groups:\n  - name: d\n    rules:\n      - record: "
                        "d:x\n        expr: %s\n" % json.dumps(promql(e)))
            o = subprocess.run([promtool, "check", "rules", rules],
                               capture_output=True, text=True)
            if o.returncode != 0:
                prob.append("%s: %s" % (where, e))
check("%d PromQL expressions pass promtool check rules" % len(exprs), prob)

# Metric names: the families of CONTRACT.md's table; counters are queried
# by their sample name, which the table already gives (x_total).
contract = open(contract_path).read()
known = set(re.findall(r"^\|\s*`(usage_[a-z0-9_]+)`\s*\|", contract, re.M))
prob = []
used = set()
for where, e in exprs:
    # Strip label matchers and strings before looking for names.
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)
    for name in re.findall(r"\b(usage_[a-z0-9_]+)\b", bare):
        used.add(name)
        if name not in known:
            prob.append("%s: %s is not in CONTRACT.md" % (where, name))
if not known:
    prob.append("no metric names found in %s" % contract_path)
check("the %d metric names used are CONTRACT.md's" % len(used), prob)
sys.exit(1 if failed else 0)
