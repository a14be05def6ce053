#!/usr/bin/env python3
"""check_collectd.py PROM_FILE CSV_DIR SOURCE [FAMILY_PREFIX]

The collectd side must carry the same figures as /metrics: for every sample
of SOURCE (families starting with FAMILY_PREFIX, default usage_), find the
value collectd's csv plugin last wrote for the identifier the plugin maps it
to (plugin instance = source, type instance = family stem + label values,
see usage(5)) and compare. Info families are identified by their first
label. Prints mismatches; exits 1 when any, or when nothing was compared.
"""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom  # noqa: E402

SELF = {"usage_source_up", "usage_scrape_duration_seconds",
        "usage_last_success_timestamp_seconds"}


def stem(name):
    s = name[len("usage_"):]
    if s.endswith("_total"):
        s = s[:-len("_total")]
    return s


def main():
    prom_file, csv_dir, source = sys.argv[1:4]
    prefix = sys.argv[4] if len(sys.argv) > 4 else "usage_"
    files = glob.glob(os.path.join(csv_dir, "*", "usage-" + source, "*"))
    by_ti = {}
    for f in files:
        base = os.path.basename(f)
        typ, rest = base.split("-", 1)
        ti = rest[:-len("-YYYY-MM-DD")]
        by_ti.setdefault(ti, []).append(f)
    bad = compared = 0
    for name, labels, value in prom.samples(open(prom_file).read()):
        if labels.get("source") != source or not name.startswith(prefix):
            continue
        if name in SELF:  # timing figures differ between two reads
            continue
        rest = [v for k, v in labels.items() if k != "source"]
        if name.endswith("_info"):  # identified by their first labels
            rest = rest[:2 if name in ("usage_ccc_user_info", "usage_jasper_rate_plan_info") else 1]
        ti = "-".join([stem(name)] + rest).replace("/", "_")
        if len(ti) > 127:
            continue  # hashed identifiers are covered by the unit tests
        paths = by_ti.get(ti)
        if not paths:
            print("missing on the collectd side: %s -> %s" % (name, ti))
            bad += 1
            continue
        last = open(sorted(paths)[-1]).read().strip().splitlines()[-1]
        got = float(last.split(",")[1])
        compared += 1
        if abs(got - value) > 1e-9 * max(1.0, abs(value)):
            print("mismatch: %s: /metrics %r, collectd %r" % (ti, value, got))
            bad += 1
    print("%d figures compared with collectd, %d mismatches" % (compared, bad))
    return 1 if bad or compared == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
