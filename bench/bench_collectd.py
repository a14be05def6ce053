#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# bench_collectd.py: what the plugin costs inside a real collectd daemon
# (the whole process: collectd's own handling of every value list included).
#
#   bench_collectd.py billing   a <Billing> block beside collectd's own
#       curl_json plugin reading the same 1,000-record page (three keys,
#       one value list per record and key) from the same static server, one
#       daemon at a time: CPU per scrape (utime+stime of the process over
#       SCRAPES scrapes at a short Interval), value lists per scrape (the
#       daemon's own cache, through unixsock LISTVAL), CPU per value list
#       and minor page faults per scrape;
#       the ratio of the two taken in this run.
#   bench_collectd.py jasper    a <Jasper> block with PerDevice over one rate
#       plan of DEVICES devices (the simulator), beside an <Exporter>: CPU
#       of the first scrape and per later scrape, peak and current resident
#       memory of the daemon (VmHWM, VmRSS), value lists in collectd's
#       cache. JASPER_EXTRA adds lines to the block (e.g. 'DispatchPerDevice
#       true'), JASPER_MODE names the line ("default").
#
# The billing step also runs the block with DispatchMetaData true
# ("usage_meta"; BILLING_META=0 leaves it out).
# CALLGRIND=1 runs each billing daemon under valgrind --tool=callgrind
# instead and counts the instructions of the whole process (every thread,
# collectd's own work included) over SCRAPES scrapes (default 3 then, at a
# BILLING_INTERVAL of 6 s): the counters are zeroed once the daemon is idle
# after its warm-up scrapes and dumped once it is idle after the last one
# (callgrind_control), so the figure holds whole scrapes only: ir_per_scrape
# and ir_per_value_list, and their ratios to curl_json's. CALLGRIND_OPTS adds
# valgrind options (e.g. --separate-threads=yes). KEEP_BENCH=1 keeps
# the dumps (callgrind_annotate them) in the daemons' directories.
# Environment: top_builddir (usage.so in .libs, usage-sim), COLLECTD,
# STOCK_PLUGINS (/usr/lib/collectd), SCRAPES (billing, default 20),
# BILLING_INTERVAL (default 1 s),
# JASPER_SCRAPES (default 1), JASPER_INTERVAL (default 60 s), DEVICES
# (default 100000), BILLING_PAGE (a
# saved page; default: taken once from the simulator). Loopback only; every
# wait is bounded. Prints key=value lines for bench/bench_repeat.sh; exits
# non-zero, naming the step, when a step fails.
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

TOP = os.environ.get("top_builddir", os.getcwd())
COLLECTD = os.environ.get("COLLECTD") or shutil.which("collectd") or "/usr/sbin/collectd"
STOCK = os.environ.get("STOCK_PLUGINS", "/usr/lib/collectd")
TICK = os.sysconf("SC_CLK_TCK")
CALLGRIND = os.environ.get("CALLGRIND", "0") == "1"


def fail(msg):
    print("FAIL: bench_collectd: " + msg, file=sys.stderr)
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_s(pid):
    """utime + stime of the whole process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def minflt(pid):
    """Minor page faults of the whole process so far."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def mem_mb(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024.0
    return out


def until(limit, what, cond, step=0.01):
    t_end = time.monotonic() + limit
    while time.monotonic() < t_end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    fail("timed out after %g s waiting for %s" % (limit, what))


class Daemon:
    """One collectd with the given plugin sections, in its own directory."""

    def __init__(self, name, plugins, body, interval):
        self.dir = tempfile.mkdtemp(prefix="bench-collectd-%s." % name)
        os.mkdir(os.path.join(self.dir, "plugins"))
        for p in plugins:
            src = p if p.startswith("/") else os.path.join(STOCK, p + ".so")
            if not os.path.isfile(src):
                fail("%s: no %s" % (name, src))
            shutil.copy(src, os.path.join(self.dir, "plugins"))
        self.sock = os.path.join(self.dir, "sock")
        conf = """Interval %g
BaseDir "%s"
PIDFile "%s/collectd.pid"
PluginDir "%s/plugins"
TypesDB "/usr/share/collectd/types.db"
WriteThreads 1
# notice: without a write plugin collectd logs a line at level info for
# many value lists (its logfile plugin opens and closes the file for each)
LoadPlugin logfile
<Plugin logfile>
  LogLevel notice
  File "%s/collectd.log"
</Plugin>
LoadPlugin unixsock
<Plugin unixsock>
  SocketFile "%s"
</Plugin>
%s
""" % (interval, self.dir, self.dir, self.dir, self.dir, self.sock, body)
        for p in ("logfile", "unixsock"):
            shutil.copy(os.path.join(STOCK, p + ".so"), os.path.join(self.dir, "plugins"))
        with open(os.path.join(self.dir, "collectd.conf"), "w") as f:
            f.write(conf)
        self.name = name
        cmd = [COLLECTD, "-f", "-C", os.path.join(self.dir, "collectd.conf")]
        if CALLGRIND:
            cmd = (["valgrind", "--tool=callgrind", "--quiet",
                    "--callgrind-out-file=" + os.path.join(self.dir, "callgrind.out")] +
                   os.environ.get("CALLGRIND_OPTS", "").split() + cmd)
        self.proc = subprocess.Popen(
            cmd,
            stdout=open(os.path.join(self.dir, "collectd.out"), "w"),
            stderr=subprocess.STDOUT)
        until(30, "%s: collectd's socket" % name, lambda: os.path.exists(self.sock) or self.dead())

    def dead(self):
        if self.proc.poll() is not None:
            self.stop()
            fail("%s: collectd exited: %s" % (self.name, self.log_tail()))
        return False

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "collectd.log")) as f:
                return " | ".join(f.read().splitlines()[-5:])
        except OSError:
            return ""

    def listval(self):
        """Number of value lists in collectd's cache (unixsock LISTVAL)."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(120)
        s.connect(self.sock)
        f = s.makefile("rwb")
        f.write(b"LISTVAL\n")
        f.flush()
        head = f.readline().decode()
        n = int(head.split()[0])
        for _ in range(n):
            f.readline()
        s.close()
        return n

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not os.environ.get("KEEP_BENCH"):
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- billing vs curl_json -------------------------------------------------

class PageServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def page_handler(page):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            n = int(q.get("page", ["1"])[0])
            body = page if n == 1 else b"[]"
            if n == 1:
                with self.server.lock:
                    self.server.first_pages += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    return H


def billing_page():
    path = os.environ.get("BILLING_PAGE")
    if path:
        with open(path, "rb") as f:
            return f.read()
    sim, port = start_sim(["--billing-records", "1000"])
    try:
        req = urllib.request.Request(
            "http://127.0.0.1:%d/customer-usage-data?page=1&pageSize=1000" % port,
            headers={"Authorization": "Bearer sim-billing-token"})
        return urllib.request.urlopen(req, timeout=30).read()
    finally:
        sim.terminate()
        sim.wait()


def measure_scrapes(d, count, scrapes, warm=3):
    """CPU of d between the start of scrape `warm` and of scrape
    warm + scrapes, each start being a first-page request (count())."""
    until(60, "%s: %d scrapes" % (d.name, warm), lambda: count() >= warm or d.dead())
    c0, f0, n0 = cpu_s(d.proc.pid), minflt(d.proc.pid), count()
    until(60 + scrapes * 5, "%s: %d more scrapes" % (d.name, scrapes),
          lambda: count() >= n0 + scrapes or d.dead(), step=0.002)
    c1, f1, n1 = cpu_s(d.proc.pid), minflt(d.proc.pid), count()
    return (c1 - c0) / (n1 - n0), (f1 - f0) / (n1 - n0)


def wait_idle(d, what, quiet=0.6, limit=600):
    """Waits until d has used (almost) no CPU for `quiet` seconds."""
    t_end = time.monotonic() + limit
    c = cpu_s(d.proc.pid)
    while time.monotonic() < t_end:
        time.sleep(quiet)
        d.dead()
        c2 = cpu_s(d.proc.pid)
        if c2 - c < 0.03:
            return
        c = c2
    fail("%s: not idle after %g s (%s)" % (d.name, limit, what))


def callgrind_ctl(d, opt):
    r = subprocess.run(["callgrind_control", opt, str(d.proc.pid)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        fail("%s: callgrind_control %s: %s" % (d.name, opt, r.stdout.decode()[-300:]))


def measure_ir(d, count, scrapes, warm=2):
    """Instructions (callgrind Ir) of the whole daemon per scrape: from an
    idle point after scrape `warm` to one after at least warm + scrapes,
    divided by the scrapes that started in between (a scrape's start being
    its first-page request; idle means every one of them finished)."""
    until(600, "%s: %d scrapes" % (d.name, warm), lambda: count() >= warm or d.dead(), 0.05)
    for _ in range(10):
        wait_idle(d, "after the warm-up")
        n0 = count()
        callgrind_ctl(d, "-z")
        if count() == n0:
            break
    else:
        fail("%s: no idle moment between scrapes (raise BILLING_INTERVAL)" % d.name)
    until(600 + scrapes * 60, "%s: %d more scrapes" % (d.name, scrapes),
          lambda: count() >= n0 + scrapes or d.dead(), 0.05)
    for _ in range(10):
        wait_idle(d, "after the last scrape")
        n1 = count()
        callgrind_ctl(d, "-d")
        if count() == n1:
            break
        # a scrape began during the dump (which zeroed the counters): dump
        # again once it is over; the dumps are summed
    else:
        fail("%s: no idle moment between scrapes (raise BILLING_INTERVAL)" % d.name)
    dumps = [f for f in os.listdir(d.dir) if f.startswith("callgrind.out.")]
    if not dumps:
        fail("%s: no callgrind dump" % d.name)
    ir = 0
    for dump in dumps:  # every dump since the zeroing: their sum
        with open(os.path.join(d.dir, dump)) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    ir += int(line.split()[1])
                    break
    if ir == 0:
        fail("%s: no summary in the callgrind dump" % d.name)
    return ir / (n1 - n0)


def bench_billing():
    page = billing_page()
    records = len(json.loads(page))
    scrapes = int(os.environ.get("SCRAPES", "3" if CALLGRIND else "20"))
    interval = float(os.environ.get("BILLING_INTERVAL", "6" if CALLGRIND else "1"))
    srv = PageServer(("127.0.0.1", 0), page_handler(page))
    srv.lock = threading.Lock()
    srv.first_pages = 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]

    def count():
        with srv.lock:
            return srv.first_pages

    results = {}
    usage = """LoadPlugin usage
<Plugin usage>
  <Billing "bench">
    URL "%s/api"
    BearerToken "bench"
    GroupBy "fileName" "serviceId"
    InitialLookback 31536000
    Interval %g
%%s
  </Billing>
</Plugin>
""" % (url, interval)
    cj = """LoadPlugin curl_json
<Plugin curl_json>
  <URL "%s/customer-usage-data?page=1&pageSize=1000">
    Instance "bench"
    Interval %g
    <Key "*/dataQuantity">
      Type "gauge"
    </Key>
    <Key "*/durationQuantity">
      Type "gauge"
    </Key>
    <Key "*/sellPrice">
      Type "gauge"
    </Key>
  </URL>
</Plugin>
""" % (url, interval)
    so = os.path.join(TOP, ".libs", "usage.so")
    runs = [("usage", [so], usage % "")]
    if os.environ.get("BILLING_META", "1") == "1":
        runs.append(("usage_meta", [so], usage % "    DispatchMetaData true"))
    runs.append(("curl_json", ["curl_json"], cj))
    for name, plugins, body in runs:
        with srv.lock:
            srv.first_pages = 0
        d = Daemon(name, plugins, body, interval)
        try:
            if CALLGRIND:
                cost = measure_ir(d, count, scrapes)
                vls = d.listval()
            else:
                cost = None
                cpu, faults = measure_scrapes(d, count, scrapes)
                vls = d.listval()
                rss = mem_mb(d.proc.pid)
        finally:
            d.stop()
        if CALLGRIND:
            results[name] = (cost, vls)
            print("billing_ir_%s records=%d ir_per_scrape=%.0f value_lists=%d "
                  "ir_per_value_list=%.0f" % (name, records, cost, vls, cost / max(vls, 1)))
            continue
        results[name] = (cpu, vls)
        print("billing_%s records=%d cpu_ms_per_scrape=%.2f value_lists=%d "
              "us_per_value_list=%.2f page_faults_per_scrape=%.0f rss_mb=%.1f" %
              (name, records, cpu * 1e3, vls, cpu * 1e6 / max(vls, 1), faults, rss["VmRSS"]))
    srv.shutdown()
    cc, cv = results["curl_json"]
    line = "billing_ir_ratio" if CALLGRIND else "billing_ratio"
    what = "ir" if CALLGRIND else "cpu"
    for name in ("usage", "usage_meta"):
        if name in results:
            uc, uv = results[name]
            line += " %s_over_curl_json_%s=%.3f %s_over_curl_json_per_value_list=%.3f" % (
                name, what, uc / cc, name, (uc / uv) / (cc / cv))
    print(line)


# ---- jasper ----------------------------------------------------------------

def start_sim(args):
    pf = tempfile.mktemp(prefix="bench-collectd-sim.")
    sim = subprocess.Popen([os.path.join(TOP, "usage-sim"), "--address", "127.0.0.1",
                            "--port", "0", "--port-file", pf] + args,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    until(15, "the simulator's port", lambda: os.path.exists(pf) and os.path.getsize(pf) > 0)
    with open(pf) as f:
        port = int(f.read())
    os.unlink(pf)
    return sim, port


def get_json(url):
    return json.loads(urllib.request.urlopen(url, timeout=60).read())


def bench_jasper():
    devices = int(os.environ.get("DEVICES", "100000"))
    scrapes = int(os.environ.get("JASPER_SCRAPES", "1"))
    interval = float(os.environ.get("JASPER_INTERVAL", "60"))
    extra = os.environ.get("JASPER_EXTRA", "")
    mode = os.environ.get("JASPER_MODE", "default")
    sim, port = start_sim(["--jasper-rate-plans", "1", "--jasper-devices", str(devices),
                           "--threads", "1"])
    base = "http://127.0.0.1:%d" % port
    plan = get_json(base + "/_sim/jasper/plans")
    plan = plan[0] if isinstance(plan, list) else plan["plans"][0]
    name = plan.get("ratePlanName") or plan.get("name")
    pages = get_json(base + "/_sim/jasper/totals?ratePlan=" + urllib.parse.quote(name))["pages"]

    def count():
        return get_json(base + "/_sim/requests")["endpoints"]["jasper"]["count"]

    body = """LoadPlugin usage
<Plugin usage>
  <Exporter>
    Address "127.0.0.1"
    Port "%d"
  </Exporter>
  <Jasper "bench">
    URL "%s"
    User "sim-user"
    Password "sim-key"
    RatePlan "%s"
    PerDevice true
    MaxDevices %d
    MaxRequestsPerSecond 0
    Interval %g
%s
  </Jasper>
</Plugin>
""" % (free_port(), base, name, devices * 2, interval, extra)
    d = Daemon("jasper", [os.path.join(TOP, ".libs", "usage.so")], body, interval)
    try:
        t0 = time.monotonic()
        # the first scrape: from the daemon's start to the second scrape's
        # first request (start-up included, a few ms)
        until(2400, "the second scrape's first page", lambda: count() > pages or d.dead(), 0.02)
        c0 = cpu_s(d.proc.pid)
        n0 = count()
        until(1200 * scrapes, "%d more scrapes" % scrapes,
              lambda: count() >= n0 + scrapes * pages or d.dead(), 0.05)
        c1 = cpu_s(d.proc.pid)
        wall = time.monotonic() - t0
        mem = mem_mb(d.proc.pid)
        vls = d.listval()
        mem2 = mem_mb(d.proc.pid)
    finally:
        d.stop()
        sim.terminate()
        sim.wait()
    print("jasper_collectd %s devices=%d pages=%d first_scrape_cpu_s=%.2f "
          "cpu_s_per_scrape=%.3f vm_hwm_mb=%.0f vm_rss_mb=%.0f value_lists=%d wall_s=%.0f" %
          (mode, devices, pages, c0, (c1 - c0) / scrapes,
           max(mem["VmHWM"], mem2["VmHWM"]), mem["VmRSS"], vls, wall))


def main():
    if not os.access(COLLECTD, os.X_OK):
        fail("no collectd at %s (install collectd-core)" % COLLECTD)
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "billing":
        bench_billing()
    elif what == "jasper":
        bench_jasper()
    else:
        fail("usage: bench_collectd.py billing|jasper")


if __name__ == "__main__":
    main()
