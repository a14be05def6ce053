#!/usr/bin/env python3
"""soak.py: the driver of the soak test; see soak.sh for what it does and
its options. Run through `make soak`."""
import contextlib
import io
import json
import re
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

TOP_SRC = os.environ["top_srcdir"]
TOP_BUILD = os.environ["top_builddir"]
sys.path.insert(0, os.path.join(TOP_SRC, "tests", "integration"))
import prom  # noqa: E402
import check_ccc as check_ccc_mod  # noqa: E402
import check_ccc_more  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "60"))
DURATION = MINUTES * 60
ASAN = os.environ.get("SOAK_ASAN", "0") == "1"
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
RSS_EVERY = float(os.environ.get("SOAK_RSS_SECONDS", str(min(30.0, max(5.0, DURATION / 60)))))
SLOPE_KB = float(os.environ.get("SOAK_RSS_SLOPE_KB", "1024"))
# The memory rises for the first minutes, and the billing window (Lookback
# 20 minutes) fills for 20 minutes. Runs of two hours or more measure the
# slope after exactly the first hour (usage(5)'s promise: flat after the
# first hour); runs of 30 to 120 minutes after a third of the run, at
# least 20 minutes (the window full); shorter runs print the slope after
# their first third without checking it. The bound scales with the length
# of the run below an hour: the same growth over the run is allowed.
if MINUTES >= 120:
    WARMUP = 3600.0
elif MINUTES >= 30:
    WARMUP = max(1200.0, DURATION / 3)
else:
    WARMUP = DURATION / 3
SLOPE_CHECKED = MINUTES >= 30 and not ASAN
SLOPE_MAX = SLOPE_KB * max(1.0, 60.0 / MINUTES)
DIR = os.environ["SOAK_DIR"]
COLLECTD = os.environ["COLLECTD"]
PLUGIN = os.environ["SOAK_PLUGIN"]
PRELOAD = os.environ.get("SOAK_PRELOAD", "")
INTERVAL = 5
# a stack frame of the plugin: its module or one of its sources
OURS = re.compile(r"usage\.so|/src/[\w/]+\.[ch]:\d+")
TOKEN_TTL = 15
PLANS = ["Monthly-Flexible-Pool", "IoT-Basic-1GB"]
FAULT_MODES = ["http500", "http503", "http429", "http401", "malformed", "html",
               "slow", "wrongtype", "empty", "deep", "huge"]
# new billing records per second, constant: the window of Lookback 1200
# then holds a steady number of ids (about BILLING_RATE * 900: records are
# dated up to 10 minutes back), so that the memory measures the plugin and
# not a growing scenario
BILLING_RATE = 4.0
LOOKBACK = 1200
FAULT_PATHS = ["/api/services", "/customer-usage-data", "/rws/", "/authenticate",
               "/api/login", "/"]
# status changes that keep the service's usage readable (Blocked and
# Provisioning are refusals; the services that start so stay so or not)
CCC_STATES = ["CertifiedSecure", "TrialActive", "TrialExpired", "DemoAccount"]
PASSWORD = "pw-SOAK-SECRET-%d" % random.randrange(10**6)
JASPER_KEY = "key-SOAK-SECRET-%d" % random.randrange(10**6)
SECRETS = [PASSWORD, JASPER_KEY, "SOAK-SECRET", "SIM-SECRET-STACKTRACE",
           "eyJhbGciOiJub25lIn0", "sess-", "sim-billing-token"]

rng = random.Random(SEED)
T0 = time.time()
failures = []
stats = {"seed": SEED, "minutes": MINUTES, "asan": ASAN, "faults": {},
         "rate_limits": 0, "revokes": 0, "state_full": 0, "state_full_how": None,
         "jasper_resets": 0, "restarts": 0, "billing_records_added": 0, "billing_late_added": 0,
         "jasper_grow": 0, "ccc_changes_added": 0,
         "counter_checks": 0, "counters_down": 0, "metrics_reads": 0, "udp_packets": 0, "udp_bytes": 0}


def log(msg):
    print("# [%6.0fs] %s" % (time.time() - T0, msg), flush=True)


def fail(msg):
    print("not ok - " + msg, flush=True)
    failures.append(msg)


def ok(msg):
    print("ok - " + msg, flush=True)


def http(url, method="GET", timeout=15):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


def sim(path, method="POST"):
    return json.loads(http(SIM_URL + path, method))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def until(limit, fn):
    end = time.time() + limit
    while time.time() < end:
        try:
            if fn():
                return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


# ---------------------------------------------------------------- write path
# collectd's network plugin sends every value list to this UDP sink, so the
# values pass a write plugin (and the log is not filled with "no write
# plugin" lines).
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
UDP_PORT = udp.getsockname()[1]


def udp_sink():
    while True:
        n = len(udp.recv(65536))
        stats["udp_packets"] += 1
        stats["udp_bytes"] += n


# ---------------------------------------------------------------- state dir
STATE = os.path.join(DIR, "state")
STATE_AWAY = STATE + ".away"
mounted = False
state_full = False


def state_setup():
    global mounted
    os.makedirs(STATE)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", STATE],
                       capture_output=True)
    mounted = r.returncode == 0
    stats["state_full_how"] = ("tmpfs of 4 MiB filled with a file" if mounted else
                               "directory renamed away (mount not permitted)")
    log("StateFile directory: " + stats["state_full_how"])


def state_fill():
    global state_full
    if mounted:
        filler = os.path.join(STATE, "filler")
        # The directory may already be full (the daemons' own files): then
        # even creating the filler fails, which is the state wanted.
        try:
            with open(filler, "wb") as f:
                block = b"\0" * 65536
                for _ in range(1000):
                    f.write(block)
                    f.flush()
        except OSError:
            pass
        # the last bytes too
        try:
            with open(filler, "ab") as f:
                for _ in range(65536):
                    f.write(b"\0" * 64)
                    f.flush()
        except OSError:
            pass
    else:
        os.rename(STATE, STATE_AWAY)
    state_full = True
    stats["state_full"] += 1
    log("StateFile directory full")


def state_release():
    global state_full
    if not state_full:
        return
    if mounted:
        os.unlink(os.path.join(STATE, "filler"))
    else:
        os.rename(STATE_AWAY, STATE)
    state_full = False
    log("StateFile directory writable again")


def state_teardown():
    if mounted:
        for f in os.listdir(STATE):
            try:
                shutil.copy(os.path.join(STATE, f), os.path.join(DIR, "state-" + f))
            except OSError:
                pass
        subprocess.run(["umount", STATE])


# ---------------------------------------------------------------- collectd
class Collectd:
    def __init__(self, name):
        self.name = name
        self.dir = os.path.join(DIR, name)
        os.makedirs(os.path.join(self.dir, "plugins"))
        shutil.copy(PLUGIN, os.path.join(self.dir, "plugins", "usage.so"))
        for p in ("logfile", "network"):
            shutil.copy("/usr/lib/collectd/%s.so" % p, os.path.join(self.dir, "plugins"))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.proc = None
        self.lifetimes = 0
        self.max_seen = {}      # counter series -> highest value read
        self.last_prom = None
        self.out = open(os.path.join(self.dir, "collectd.out"), "ab")

    def config(self):
        services = json.loads(http(SIM_URL + "/_sim/ccc/services"))
        ccc = []
        for s in services:
            ccc.append('    <Service "%s">' % s["serviceGuid"])
            ccc.append("      UserGuid " + " ".join('"%s"' % u for u in s["userGuids"]))
            ccc.append("    </Service>")
        pw = os.path.join(DIR, "password")
        conf = """Interval {iv}
BaseDir "{d}"
PIDFile "{d}/collectd.pid"
PluginDir "{d}/plugins"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{d}/collectd.log"
  Timestamp true
</Plugin>
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "{udp}"
</Plugin>
LoadPlugin usage
<Plugin usage>
  <Exporter>
    Address "127.0.0.1"
    Port "{port}"
  </Exporter>
  <CCC "acme">
    URL "{sim}"
    Interval {iv}
    Timeout 5000
    StatusChanges true
    StatusChangesLookback 15552000
    StatusChangesPageSize 25
    StateFile "{state}/{n}-ccc.state"
    <Login>
      Preset "ccc"
      User "monitor"
      PasswordFile "{pw}"
      TTL {ttl}
    </Login>
{ccc}
  </CCC>
  <Billing "acme-billing">
    URL "{sim}"
    Interval {iv}
    Timeout 5000
    PageSize 500
    InitialLookback 4320000
    Lookback {lookback}
    StateFile "{state}/{n}-billing.state"
    <Login>
      URL "/authenticate"
      Field "username" "monitor"
      FieldFile "password" "{pw}"
      TokenField "token"
    </Login>
  </Billing>
  <Jasper "iot">
    URL "{sim}"
    User "sim-user"
    PasswordFile "{dir}/jasper.key"
{plans}
    PerDevice true
    Interval {iv}
    Timeout 5000
  </Jasper>
</Plugin>
""".format(iv=INTERVAL, d=self.dir, port=self.port, sim=SIM_URL, state=STATE,
           n=self.name, pw=pw, ttl=TOKEN_TTL, lookback=LOOKBACK, udp=UDP_PORT, ccc="\n".join(ccc), dir=DIR,
           plans="\n".join('    RatePlan "%s"' % p for p in PLANS))
        with open(os.path.join(self.dir, "collectd.conf"), "w") as f:
            f.write(conf)

    def start(self):
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
            env["ASAN_OPTIONS"] = "detect_leaks=1:log_path=%s/asan" % self.dir
        self.proc = subprocess.Popen([COLLECTD, "-f", "-C", os.path.join(self.dir, "collectd.conf")],
                                     stdout=self.out, stderr=self.out, env=env)
        self.lifetimes += 1
        if not until(60, lambda: http(self.url + "/metrics", timeout=5) is not None):
            fail("%s: collectd did not serve /metrics within 60 s" % self.name)
            raise SystemExit(1)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self):
        """A clean stop: SIGTERM, at most 60 s (ASan's leak check takes a
        while). Returns the exit status or None."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            rc = None
        self.proc = None
        return rc

    def rss_kb(self):
        if self.proc is None:
            return None
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def metrics(self):
        text = http(self.url + "/metrics", timeout=15)
        self.last_prom = text
        return text

    def check_monotonic(self):
        """Billing and CCC status-change counters never go down, in one
        lifetime and across restarts (their StateFile keeps them)."""
        try:
            text = self.metrics()
        except Exception:
            return
        stats["metrics_reads"] += 1
        for name, labels, value in prom.samples(text):
            if not (name.startswith("usage_billing_") and name.endswith("_total")
                    or name == "usage_ccc_status_changes_total"):
                continue
            key = name + json.dumps(sorted(labels.items()))
            stats["counter_checks"] += 1
            prev = self.max_seen.get(key)
            if prev is not None and value < prev:
                stats["counters_down"] += 1
                fail("%s: %s went down from %r to %r (lifetime %d)"
                     % (self.name, key, prev, value, self.lifetimes))
            if prev is None or value > prev:
                self.max_seen[key] = value


# ---------------------------------------------------------------- checks
def check_billing(text, source):
    fams = {"records": "usage_billing_records_total",
            "dataQuantity": "usage_billing_data_bytes_total",
            "durationQuantity": "usage_billing_duration_seconds_total",
            "sellPrice": "usage_billing_sell_price_total",
            "buyPrice": "usage_billing_buy_price_total"}
    scale = {"dataQuantity": 1e6}
    got = {}
    for name, labels, value in prom.samples(text):
        if labels.get("source") != source or name not in fams.values():
            continue
        got[(name, labels.get("customer_id"), labels.get("call_class"),
             labels.get("usage_direction"))] = value
    want = sim("/_sim/billing/totals?groupBy=customerId,callClass,usageDirection", "GET")
    bad = []
    n = 0
    for g in want["groups"]:
        lab = g["labels"]
        for f, fam in fams.items():
            w = float(g[f]) * scale.get(f, 1)
            k = (fam, lab["customerId"], lab["callClass"], lab["usageDirection"])
            v = got.get(k)
            n += 1
            if v is None or abs(v - w) > 1e-9 * max(1.0, abs(w)):
                bad.append("%s: simulator %r, /metrics %r" % (k, w, v))
    if len(got) != n:
        bad.append("%d billing series on /metrics, %d expected" % (len(got), n))
    return n, bad, int(want["total"]["records"])


def check_jasper(text, source):
    got, dev, devices = {}, {}, {}
    for name, labels, value in prom.samples(text):
        if labels.get("source") != source or not name.startswith("usage_jasper_"):
            continue
        if name.startswith("usage_jasper_device_"):
            k = (name.replace("device_", "zone_"), labels["rate_plan"], labels["zone"],
                 labels.get("direction"))
            dev[k] = dev.get(k, 0) + value
            devices.setdefault((labels["rate_plan"], labels["zone"]), set()).add(labels["iccid"])
        else:
            got[(name, labels.get("rate_plan"), labels.get("zone"), labels.get("direction"))] = value
    bad = []
    n = 0
    for plan in PLANS:
        t = sim("/_sim/jasper/totals?ratePlan=" + plan, "GET")
        for z in t["zones"]:
            zn = z["zone"]
            want = {("usage_jasper_zone_devices", plan, zn, None): z["devices"],
                    ("usage_jasper_zone_data_bytes_total", plan, zn, None): z["dataUsage"],
                    ("usage_jasper_zone_sms_total", plan, zn, "mo"): z["smsMOUsage"],
                    ("usage_jasper_zone_sms_total", plan, zn, "mt"): z["smsMTUsage"],
                    ("usage_jasper_zone_voice_seconds_total", plan, zn, "mo"): z["voiceMOUsage"],
                    ("usage_jasper_zone_voice_seconds_total", plan, zn, "mt"): z["voiceMTUsage"]}
            for k, v in want.items():
                n += 1
                if got.get(k) != v:
                    bad.append("%s: simulator %r, /metrics %r" % (k, v, got.get(k)))
                if k[0] != "usage_jasper_zone_devices" and dev.get(k) != v:
                    bad.append("per-device sum %s: simulator %r, /metrics %r" % (k, v, dev.get(k)))
            if len(devices.get((plan, zn), ())) != z["devices"]:
                bad.append("devices of %s/%s: simulator %d, /metrics %d"
                           % (plan, zn, z["devices"], len(devices.get((plan, zn), ()))))
    return n, bad


def ccc_token():
    body = json.dumps({"Username": "monitor", "Password": PASSWORD}).encode()
    req = urllib.request.Request(SIM_URL + "/api/login", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.load(r)["SessionToken"]


class SignedIn(urllib.request.BaseHandler):
    """Sends a session token no older than 5 s (they live TOKEN_TTL)."""
    token = None
    since = 0.0

    def http_request(self, req):
        if not req.full_url.startswith(SIM_URL + "/api/login"):
            if time.time() - SignedIn.since > 5:
                SignedIn.token, SignedIn.since = ccc_token(), time.time()
            req.add_header("x-sm-session-token", SignedIn.token)
        return req


def check_ccc(c, prom_file):
    """check_ccc.py and check_ccc_more.py, signed in to the simulator (its
    CCC endpoints want a session token with --login)."""
    guids = [s["serviceGuid"] for s in sim("/_sim/ccc/services", "GET")]
    snap = os.path.join(c.dir, "ccc-snapshot.json")
    urllib.request.install_opener(urllib.request.build_opener(SignedIn()))
    out = io.StringIO()
    argv = sys.argv
    try:
        with contextlib.redirect_stdout(out):
            r = [check_ccc_mod.snapshot(SIM_URL, snap, guids)]
            sys.argv = ["check_ccc.py", "compare", snap, prom_file, "acme"]
            r.append(check_ccc_mod.main())
            r.append(check_ccc_more.users(SIM_URL, prom_file, "acme"))
            r.append(check_ccc_more.changes(SIM_URL, prom_file, "acme"))
    finally:
        sys.argv = argv
        urllib.request.install_opener(None)
    return not any(r), out.getvalue().strip().splitlines()


def fresh(text, since):
    """Every source up, with a success that ended after `since`."""
    vals = {}
    for name, labels, value in prom.samples(text):
        if name in ("usage_source_up", "usage_last_success_timestamp_seconds"):
            vals[(name, labels.get("source"))] = value
    for s in ("acme", "acme-billing", "iot"):
        if vals.get(("usage_source_up", s)) != 1:
            return False
        if vals.get(("usage_last_success_timestamp_seconds", s), 0) < since:
            return False
    return True


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def data_sizes(c):
    """What the plugin of daemon c holds, to set beside its memory: the
    series it publishes (per source), the Jasper devices among them, the
    ids of the billing window and its label sets (the last line of its
    StateFile), the status-change GUIDs CCC keeps (its StateFile's seen
    lines), and the simulator's records inside the window."""
    out = {"series": 0}
    try:
        iccids = set()
        for name, labels, _ in prom.samples(c.metrics()):
            out["series"] += 1
            src = "series_" + labels.get("source", "-")
            out[src] = out.get(src, 0) + 1
            if "iccid" in labels:
                iccids.add(labels["iccid"])
        out["jasper_devices"] = len(iccids)
    except Exception as e:
        out["series_error"] = repr(e)
    for d in (STATE, STATE_AWAY):
        try:
            with open(os.path.join(d, c.name + "-billing.state"), errors="replace") as f:
                last = f.read().rstrip("\n").rsplit("\n", 1)[-1].split()
            if last[:1] == ["end"]:
                out["billing_groups"], out["billing_window_ids"] = int(last[1]), int(last[2])
            with open(os.path.join(d, c.name + "-ccc.state"), errors="replace") as f:
                out["ccc_seen"] = sum(1 for line in f if line.startswith("seen "))
            break
        except (OSError, ValueError, IndexError):
            continue
    try:
        t = sim("/_sim/billing/totals?groupBy=customerId&eventDateFrom=" + iso(time.time() - LOOKBACK), "GET")
        out["sim_window_records"] = int(t["total"]["records"])
        out["sim_records"] = int(t["recordsHeld"])
    except Exception as e:
        out["sim_error"] = repr(e)
    return out


def slope_kb_per_hour(samples):
    """The least-squares slope of (seconds, kB) samples, in kB an hour."""
    n = len(samples)
    if n < 3:
        return None
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    if den == 0:
        return None
    return sum((t - mt) * (r - mr) for t, r in samples) / den * 3600


def median_slope_kb_per_hour(samples):
    """The Theil-Sen slope: the median of the slopes between every two
    samples, in kB an hour. A sample taken while a large body is in flight
    (the 64 MiB fault, up to MaxResponseSize in one buffer, freed once the
    request ends) stands far above the others; least squares lets a few of
    them near either end tilt the line by more than the bound, the median
    does not. Memory that is kept raises every later sample and moves the
    median slope as much as the least-squares one."""
    if len(samples) < 3:
        return None
    slopes = sorted((r2 - r1) / (t2 - t1)
                    for i, (t1, r1) in enumerate(samples)
                    for t2, r2 in samples[i + 1:] if t2 > t1)
    if not slopes:
        return None
    m = len(slopes)
    mid = slopes[m // 2] if m % 2 else (slopes[m // 2 - 1] + slopes[m // 2]) / 2
    return mid * 3600


# ---------------------------------------------------------------- events
class Plan:
    """The times of the next events, random, with one of each kind sure to
    happen in the middle of the run however short it is."""
    def __init__(self):
        now = time.time()
        self.end = now + DURATION
        span = DURATION
        self.next = {
            "grow": now + 3,
            "fault": now + rng.uniform(5, 20),
            "kill": now + rng.uniform(0.15, 0.3) * span,
            "rss": now,
            "poll": now + 10,
            "jasper_reset": now + rng.uniform(0.3, 0.6) * span,
            "state_full": now + rng.uniform(0.1, 0.5) * span,
            "revoke": now + rng.uniform(0.1, 0.5) * span,
        }
        self.kill_gap = (min(120.0, span / 8), min(360.0, span / 4))
        self.undo = []          # (time, action)
        self.grown_since = now  # billing records added up to this time


def do_fault(plan, now):
    what = rng.choice(["fault", "fault", "fault", "fault", "rate", "revoke", "state"])
    if what == "fault":
        mode = rng.choice(FAULT_MODES)
        path = rng.choice(FAULT_PATHS)
        count = rng.choice([0, 1, 1, 2, 3, 5])
        q = "/_sim/fault?path=%s&mode=%s&count=%d" % (path, mode, count)
        if mode == "slow":
            q += "&delay=%d" % rng.randrange(500, 8000)
        sim(q)
        stats["faults"][mode] = stats["faults"].get(mode, 0) + 1
        if count == 0:
            plan.undo.append((now + rng.uniform(5, 45), "clear"))
    elif what == "rate":
        sim("/_sim/rate-limit?per-second=%d" % rng.randrange(2, 7))
        stats["rate_limits"] += 1
        plan.undo.append((now + rng.uniform(10, 60), "rate_off"))
    elif what == "revoke":
        sim("/_sim/login/revoke")
        stats["revokes"] += 1
    elif what == "state" and not state_full:
        state_fill()
        plan.undo.append((now + rng.uniform(30, 90), "state_release"))
    plan.next["fault"] = now + rng.uniform(5, 30)


def undo(action):
    if action == "clear":
        sim("/_sim/fault/clear")
    elif action == "rate_off":
        sim("/_sim/rate-limit?per-second=0")
    elif action == "state_release":
        state_release()


def do_grow(plan, now, services):
    # New records at a constant rate (BILLING_RATE), dated in the last 10
    # minutes; now and then a few late ones, dated 10 to 18 minutes back:
    # older than records already counted, still inside the Lookback of 20
    # minutes (the window only moves on a commit, so they are counted
    # whatever fault delays the next scrape). Records loaded days late fall
    # outside any steady window: test_billing's. The window then holds a
    # window of steady size, so that the memory can level off within the
    # run.
    due = int((now - plan.grown_since) * BILLING_RATE)
    if due > 0:
        sim("/_sim/billing/records?count=%d" % due)
        stats["billing_records_added"] += due
        plan.grown_since += due / BILLING_RATE
    if rng.random() < 0.1:
        n = rng.randrange(1, 10)
        sim("/_sim/billing/records?count=%d&age=%d" % (n, rng.randrange(600, 1080)))
        stats["billing_records_added"] += n
        stats["billing_late_added"] += n
    # Jasper: the same devices, their usage growing
    if rng.random() < 0.4:
        sim("/_sim/jasper/grow?add=%d" % rng.randrange(1, 100000))
        stats["jasper_grow"] += 1
    if rng.random() < 0.2:
        n = rng.randrange(1, 4)
        sim("/_sim/ccc/status-changes?service=%s&status=%s&count=%d"
            % (rng.choice(services), rng.choice(CCC_STATES), n))
        stats["ccc_changes_added"] += n
    plan.next["grow"] = now + rng.uniform(3, 12)


def main():
    global SIM_URL
    if os.path.exists(DIR):
        for d in (os.path.join(DIR, "state"),):
            subprocess.run(["umount", d], capture_output=True)
        shutil.rmtree(DIR)
    os.makedirs(DIR)
    log("seed %d, %.1f minutes, warm-up %.0f s, RSS slope bound %.0f kB/h%s"
        % (SEED, MINUTES, WARMUP, SLOPE_MAX, ", ASan" if ASAN else ""))
    with open(os.path.join(DIR, "password"), "w") as f:
        f.write(PASSWORD + "\n")
    with open(os.path.join(DIR, "jasper.key"), "w") as f:
        f.write(JASPER_KEY + "\n")
    state_setup()
    threading.Thread(target=udp_sink, daemon=True).start()
    simlog = open(os.path.join(DIR, "sim.out"), "wb")
    portfile = os.path.join(DIR, "sim.port")
    simproc = subprocess.Popen(
        [os.path.join(TOP_BUILD, "usage-sim"), "--address", "127.0.0.1", "--port", "0",
         "--port-file", portfile, "--seed", str(SEED % 100000), "--threads", "8",
         "--login", "--token-ttl", str(TOKEN_TTL), "--login-password", PASSWORD,
         "--billing-records", "2000", "--ccc-services", "4", "--ccc-users", "5",
         "--ccc-status-changes", "40", "--jasper-devices", "120"],
        stdout=simlog, stderr=simlog)
    instances = []
    rss = open(os.path.join(DIR, "rss.csv"), "w")
    rss.write("elapsed_s,instance,lifetime,pid,rss_kb\n")
    try:
        if not until(20, lambda: os.path.getsize(portfile) > 0):
            fail("the simulator did not start")
            return 1
        SIM_URL = "http://127.0.0.1:" + open(portfile).read().strip().split("=")[-1]
        sim("/_sim/jasper/credentials?user=sim-user&key=" + JASPER_KEY)
        services = [s["serviceGuid"] for s in sim("/_sim/ccc/services", "GET")]
        steady, restarted = Collectd("steady"), Collectd("restarted")
        instances = [steady, restarted]
        for c in instances:
            c.config()
            c.start()
        plan = Plan()
        down_until = None   # the restarted daemon is down until then
        rss_samples = []
        sizes_at = {}
        while True:
            now = time.time()
            if now >= plan.end:
                break
            for t, action in list(plan.undo):
                if now >= t:
                    undo(action)
                    plan.undo.remove((t, action))
            nx = plan.next
            if now >= nx["grow"]:
                do_grow(plan, now, services)
            if now >= nx["fault"]:
                do_fault(plan, now)
            if now >= nx["revoke"]:
                sim("/_sim/login/revoke")
                stats["revokes"] += 1
                nx["revoke"] = now + rng.uniform(120, 600)
            if now >= nx["state_full"]:
                if not state_full:
                    state_fill()
                    plan.undo.append((now + rng.uniform(30, 90), "state_release"))
                nx["state_full"] = now + rng.uniform(300, 900)
            if now >= nx["jasper_reset"]:
                sim("/_sim/jasper/reset-cycle")
                stats["jasper_resets"] += 1
                log("new Jasper billing cycle")
                nx["jasper_reset"] = now + rng.uniform(900, 1800)
            if down_until is None and now >= nx["kill"] and (mounted or not state_full):
                restarted.check_monotonic()      # the last read before the kill
                restarted.kill9()
                stats["restarts"] += 1
                down_until = now + rng.uniform(0, 10)
                log("kill -9 of restarted (lifetime %d)" % restarted.lifetimes)
            if down_until is not None and now >= down_until and (mounted or not state_full):
                restarted.start()
                down_until = None
                nx["kill"] = time.time() + rng.uniform(*plan.kill_gap)
            if now >= nx["poll"]:
                for c in instances:
                    if c.proc is not None:
                        c.check_monotonic()
                        if c.proc.poll() is not None:
                            fail("%s: collectd exited by itself (status %r)"
                                 % (c.name, c.proc.returncode))
                            return 1
                nx["poll"] = now + 10
            if now >= nx["rss"]:
                el = now - T0
                for c in instances:
                    r = c.rss_kb()
                    if r is not None:
                        rss.write("%.0f,%s,%d,%d,%d\n" % (el, c.name, c.lifetimes, c.proc.pid, r))
                        if c is steady:
                            rss_samples.append((el, r))
                rss.flush()
                nx["rss"] = now + RSS_EVERY
                if "warmup" not in sizes_at and now - T0 >= WARMUP:
                    sizes_at["warmup"] = dict(data_sizes(steady), elapsed_s=round(now - T0))
                    log("steady plugin's data at the end of the warm-up: %s" % sizes_at["warmup"])
            time.sleep(0.5)

        # ------------------------------------------------------ the end
        sizes_at["end"] = dict(data_sizes(steady), elapsed_s=round(time.time() - T0))
        log("steady plugin's data at the end of the run: %s" % sizes_at["end"])
        stats["steady_data"] = sizes_at
        log("quiescing: faults cleared, rate limit off, growth stopped")
        sim("/_sim/fault/clear")
        sim("/_sim/rate-limit?per-second=0")
        state_release()
        if restarted.proc is None:
            restarted.start()
        faults_total = sum(stats["faults"].values())
        tq = time.time()
        for c in instances:
            # two whole scrapes after the quiesce
            if not until(240, lambda: fresh(c.metrics(), tq + 2 * INTERVAL)):
                fail("%s: not every source had a good scrape within 240 s of the quiesce" % c.name)
        for c in instances:
            c.check_monotonic()
            res = {}

            def good():
                text = c.metrics()
                pf = os.path.join(c.dir, "final.prom")
                with open(pf, "w") as f:
                    f.write(text)
                res["b"] = check_billing(text, "acme-billing")
                res["j"] = check_jasper(text, "iot")
                try:
                    res["c"] = check_ccc(c, pf)
                except Exception as e:
                    res["c"] = (False, ["check_ccc: %r" % e])
                return not res["b"][1] and not res["j"][1] and res["c"][0]
            until(60, good)
            if "b" not in res:
                fail("%s: the final comparison did not run" % c.name)
                continue
            nb, bad, records = res["b"]
            if bad:
                fail("%s: billing counters differ from the simulator:\n  %s" % (c.name, "\n  ".join(bad[:10])))
            else:
                ok("%s: %d billing figures equal the simulator's sums (%d records)" % (c.name, nb, records))
            stats["billing_records_total"] = records
            nj, bad = res["j"]
            if bad:
                fail("%s: Jasper figures differ from the simulator:\n  %s" % (c.name, "\n  ".join(bad[:10])))
            else:
                ok("%s: %d Jasper zone figures (and their per-device sums) equal the simulator's"
                   % (c.name, nj))
            good_c, out = res["c"]
            if good_c:
                ok("%s: CCC figures equal the simulator's (%s)"
                   % (c.name, "; ".join(o for o in out if "compared" in o)))
            else:
                fail("%s: CCC figures differ:\n  %s" % (c.name, "\n  ".join(out)))
            stats[c.name + "_figures"] = {"billing": nb, "jasper": nj}
        if stats["counters_down"] == 0:
            ok("no billing or CCC status-change counter went down (%d values in %d reads of "
               "/metrics, %d restarts with kill -9)"
               % (stats["counter_checks"], stats["metrics_reads"], stats["restarts"]))
        # secrets
        leaked = []
        for c in instances:
            texts = {"/metrics": c.metrics(), "status page": http(c.url + "/")}
            for fn in ("collectd.log", "collectd.out"):
                with open(os.path.join(c.dir, fn), "rb") as f:
                    texts[c.name + "/" + fn] = f.read().decode("utf-8", "replace")
            for where, text in texts.items():
                for s in SECRETS:
                    if s in text:
                        leaked.append("%s in %s of %s" % (s, where, c.name))
        if leaked:
            fail("secrets found: " + "; ".join(leaked))
        else:
            ok("no password, token or upstream stack trace in the logs, /metrics or the status page")
        stats["scrape_errors_steady"] = {}
        for name, labels, value in prom.samples(steady.metrics()):
            if name == "usage_scrape_errors_total":
                k = labels["source"] + "/" + labels["reason"]
                stats["scrape_errors_steady"][k] = value
        sf = 0
        for c in instances:
            with open(os.path.join(c.dir, "collectd.log"), errors="replace") as f:
                sf += sum(1 for line in f if "cannot write the state file" in line)
        stats["state_file_log_lines"] = sf
        if stats["state_full"] and not sf:
            fail("the StateFile directory was full %d times but no state_file error was counted"
                 % stats["state_full"])
        elif stats["state_full"]:
            ok("the full StateFile directory was reported (%d log lines in %d episodes)"
               % (sf, stats["state_full"]))
        # clean stops; the leak check under ASan
        for c in instances:
            t = time.time()
            rc = c.stop()
            took = time.time() - t
            if rc != 0:
                fail("%s: the clean stop ended with status %r after %.1f s" % (c.name, rc, took))
            else:
                ok("%s: clean stop in %.1f s" % (c.name, took))
        if ASAN:
            for c in instances:
                reports = [f for f in os.listdir(c.dir) if f.startswith("asan.")]
                usage_leaks = other = 0
                for f in reports:
                    text = open(os.path.join(c.dir, f)).read()
                    for block in text.split("\n\n"):
                        if OURS.search(block) and ("leak of" in block
                                                   or "ERROR: AddressSanitizer" in block):
                            usage_leaks += 1
                        elif "leak of" in block:
                            other += 1
                    if "ERROR: AddressSanitizer" in text:
                        fail("%s: AddressSanitizer error in %s" % (c.name, f))
                stats[c.name + "_asan"] = {"reports": len(reports), "usage_so": usage_leaks,
                                           "elsewhere": other}
                if usage_leaks:
                    fail("%s: %d leaks from usage.so (see %s/asan.*)" % (c.name, usage_leaks, c.dir))
                else:
                    ok("%s: no leak from usage.so at the clean stop (%d ASan reports, %d leaks "
                       "outside usage.so)" % (c.name, len(reports), other))
        # resident memory
        warm = WARMUP
        after = [(t, r) for t, r in rss_samples if t >= warm]
        slope = median_slope_kb_per_hour(after)
        lsq = slope_kb_per_hour(after)
        allr = [r for _, r in rss_samples]
        stats["rss"] = {"samples": len(rss_samples), "after_warmup": len(after),
                        "min_kb": min(allr) if allr else None, "max_kb": max(allr) if allr else None,
                        "after_warmup_min_kb": min(r for _, r in after) if after else None,
                        "after_warmup_max_kb": max(r for _, r in after) if after else None,
                        "slope_kb_per_hour": slope, "lsq_slope_kb_per_hour": lsq,
                        "bound_kb_per_hour": SLOPE_MAX,
                        "warmup_s": warm, "checked": SLOPE_CHECKED}
        msg = ("steady collectd RSS after %.0f s of warm-up: median slope %s kB/h "
               "(least squares %s) over %d samples "
               "(bound %.0f kB/h), %s..%s kB (whole run %s..%s kB)"
               % (warm, "%.1f" % slope if slope is not None else "n/a",
                  "%.1f" % lsq if lsq is not None else "n/a", len(after), SLOPE_MAX,
                  stats["rss"]["after_warmup_min_kb"], stats["rss"]["after_warmup_max_kb"],
                  stats["rss"]["min_kb"], stats["rss"]["max_kb"]))
        if not SLOPE_CHECKED:
            log(msg + (" (not checked under ASan)" if ASAN else
                       " (not checked in runs shorter than 30 minutes)"))
        elif slope is None:
            fail("too few RSS samples: " + msg)
        elif slope >= SLOPE_MAX:
            fail(msg)
        else:
            ok(msg)
        stats["faults_total"] = faults_total
        for c in instances:
            with open(os.path.join(c.dir, "collectd.log"), "rb") as f:
                stats[c.name + "_log_lines"] = sum(1 for _ in f)
        log("network plugin: %d packets (%d bytes) received; log lines: steady %d, restarted %d"
            % (stats["udp_packets"], stats["udp_bytes"], stats["steady_log_lines"],
               stats["restarted_log_lines"]))
        if not stats["udp_packets"]:
            fail("no value list reached the network plugin")
        log("faults injected: %d (%s), rate limits %d, token revocations %d, StateFile directory "
            "full %d times, Jasper cycle resets %d, kill -9 restarts %d, billing records added %d "
            "(%d of them late), CCC status changes added %d, Jasper growths %d"
            % (faults_total, ", ".join("%s %d" % kv for kv in sorted(stats["faults"].items())),
               stats["rate_limits"], stats["revokes"], stats["state_full"], stats["jasper_resets"],
               stats["restarts"], stats["billing_records_added"], stats["billing_late_added"],
               stats["ccc_changes_added"], stats["jasper_grow"]))
    finally:
        for c in instances:
            if c.proc is not None:
                c.proc.kill()
                c.proc.wait()
        simproc.terminate()
        simproc.wait()
        try:
            state_release()
        except OSError:
            pass
        state_teardown()
        stats["failures"] = failures
        stats["wall_s"] = time.time() - T0
        with open(os.path.join(DIR, "summary.json"), "w") as f:
            json.dump(stats, f, indent=1, sort_keys=True)
    print("soak: %s, %d failures (results in %s)" % ("PASS" if not failures else "FAIL",
                                                      len(failures), DIR))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
