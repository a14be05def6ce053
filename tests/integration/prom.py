#!/usr/bin/env python3
"""prom.py: read figures out of a Prometheus text exposition for the tests.

  prom.py value FILE 'name{a="x",b="y"}'   value of the sample with exactly
                                           these labels (order-free); exit 1
                                           when absent
  prom.py sum FILE 'name{a="x"}'           sum over samples whose labels
                                           include these; exit 1 when none
  prom.py count FILE 'name{a="x"}'         number of such samples
FILE '-' reads standard input.
"""
import re
import sys

LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_labels(text):
    labels = {}
    pos = 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError("bad label set: %r" % text)
        value = m.group(2).replace('\\n', '\n').replace('\\"', '"').replace('\\\\', '\\')
        labels[m.group(1)] = value
        pos = m.end()
    return labels


def parse_selector(sel):
    if '{' in sel:
        name, rest = sel.split('{', 1)
        return name, parse_labels(rest.rstrip('}'))
    return sel, {}


def samples(text):
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        if '{' in line:
            name, rest = line.split('{', 1)
            labels_text, value = rest.rsplit('}', 1)
            yield name, parse_labels(labels_text), float(value.split()[0])
        else:
            name, value = line.split()[:2]
            yield name, {}, float(value)


def main():
    op, path, sel = sys.argv[1:4]
    text = sys.stdin.read() if path == '-' else open(path).read()
    name, want = parse_selector(sel)
    found = []
    for n, labels, value in samples(text):
        if n != name:
            continue
        if op == 'value' and labels == want:
            found.append(value)
        elif op in ('sum', 'count') and all(labels.get(k) == v for k, v in want.items()):
            found.append(value)
    if op == 'count':
        print(len(found))
        return 0
    if not found:
        return 1
    total = sum(found) if op == 'sum' else found[0]
    print(repr(int(total)) if total == int(total) and abs(total) < 2**53 else repr(total))
    return 0


if __name__ == '__main__':
    sys.exit(main())
