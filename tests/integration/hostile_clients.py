#!/usr/bin/env python3
"""hostile_clients.py: the attackers and the honest scraper of
test_hostile.sh. Loopback only, stdlib only, every loop bounded in count
and time. Each prints one line of key=value figures.

  hostile_clients.py attack PORT SECONDS READY_FILE STOP_FILE
      keeps N (3000) connections from 30 source addresses 127.0.0.10-39
      (100 each): a third idle, a third slowloris (a request line, then one
      header byte a second), a third garbage (64 random bytes a second).
      A connection the server closes is opened again after 1 s, until
      STOP_FILE exists or SECONDS have passed (at most N * (SECONDS + 2)
      connects in all).
      READY_FILE is written once all N were opened and 95% of them
      connected or refused (or after 3 s). Prints connects, server_closed, max_open, ...
  hostile_clients.py flood PORT SECONDS USER STOP_FILE
      16 threads send GET /metrics from 127.0.0.50 with USER and a new
      wrong password each time, one after the other, until STOP_FILE
      exists or SECONDS have passed (at most 20000 requests). Prints
      requests and the count of each status (or error).
  hostile_clients.py scrape PORT N SPACING USER PASS PID READY_FILE
      waits (up to 30 s) for READY_FILE, then makes N authenticated
      scrapes from 127.0.0.1, SPACING seconds apart, each
      on a new connection (the hardest case at the cap), timed from the
      connect to the last byte of the body; before and after each one
      samples VmRSS, Threads and the open files of PID from /proc. Prints
      codes, ms, max_ms, median_ms, body_ok, rss_kb_first, rss_kb_last,
      rss_kb_max, threads_min, threads_max, fds_max.
  hostile_clients.py slowloris PORT N EVERY LIMIT
      N connections each send a request line, then a header byte every
      EVERY s without ending the request, until the server closes them or
      LIMIT s have passed. Prints closed_s (per connection, or "open"),
      closed, min_s, max_s.
  hostile_clients.py status PID
      prints "rss_kb=R threads=T fds=F" from /proc/PID.
"""
import base64
import errno
import http.client
import os
import selectors
import socket
import statistics
import sys
import threading
import time

# Linux: bind() to an address without reserving a port until connect(),
# so 100 connections per source address never run out of ports.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def proc_status(pid):
    rss = threads = -1
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads, len(os.listdir("/proc/%d/fd" % pid))


class Slot:
    __slots__ = ("addr", "mode", "sock", "connected", "last_send", "reopen_at")

    def __init__(self, addr, mode):
        self.addr, self.mode = addr, mode
        self.sock, self.connected = None, False
        self.last_send, self.reopen_at = 0.0, 0.0


def attack(port, seconds, ready_file, stop_file, n=3000, naddr=30):
    sel = selectors.DefaultSelector()
    slots = [Slot("127.0.0.%d" % (10 + i % naddr), ("idle", "slow", "garbage")[i % 3])
             for i in range(n)]
    st = dict(connects=0, connect_errors=0, server_closed=0, send_errors=0,
              max_open=0, garbage_bytes=0, slow_bytes=0)
    max_connects = n * (seconds + 2)
    t0 = time.monotonic()
    t_end = t0 + seconds
    ready = False
    open_now = 0

    def drop(s, now, by_server):
        nonlocal open_now
        sel.unregister(s.sock)
        s.sock.close()
        if s.connected:
            open_now -= 1
        s.sock, s.connected = None, False
        s.reopen_at = now + 1.0
        if by_server:
            st["server_closed"] += 1

    def send(s, data, now):
        try:
            s.sock.send(data)
            s.last_send = now
            return True
        except OSError:
            st["send_errors"] += 1
            drop(s, now, True)
            return False

    def open_slot(s, now):
        if st["connects"] >= max_connects:
            s.reopen_at = t_end
            return
        so = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        so.setblocking(False)
        so.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        so.bind((s.addr, 0))
        st["connects"] += 1
        rc = so.connect_ex(("127.0.0.1", port))
        if rc not in (0, errno.EINPROGRESS):
            so.close()
            st["connect_errors"] += 1
            s.reopen_at = now + 1.0
            return
        s.sock, s.connected, s.last_send = so, False, now
        sel.register(so, selectors.EVENT_READ | selectors.EVENT_WRITE, s)

    def connected(s, now):
        nonlocal open_now
        s.connected = True
        open_now += 1
        st["max_open"] = max(st["max_open"], open_now)
        sel.modify(s.sock, selectors.EVENT_READ, s)
        if s.mode == "slow":
            send(s, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", now)
        elif s.mode == "garbage":
            st["garbage_bytes"] += 64
            send(s, os.urandom(64), now)

    next_pass = t0
    while True:
        now = time.monotonic()
        if now >= t_end or (ready and os.path.exists(stop_file)):
            break
        for key, ev in sel.select(timeout=0.05):
            s = key.data
            if s.sock is None or key.fileobj is not s.sock:
                continue
            now = time.monotonic()
            if not s.connected:
                err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    st["connect_errors"] += 1
                    drop(s, now, False)
                    continue
                connected(s, now)
                if s.sock is None:
                    continue
            if ev & selectors.EVENT_READ:
                try:
                    data = s.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the server closed it (answered or not)
                    drop(s, now, True)
        now = time.monotonic()
        if now < next_pass:
            continue
        next_pass = now + 0.1
        pending = 0
        for s in slots:
            if s.sock is None:
                if now >= s.reopen_at:
                    open_slot(s, now)
                    pending += s.sock is not None and not s.connected
                continue
            if not s.connected:
                pending += 1
            elif s.mode != "idle" and now - s.last_send >= 1.0:
                if s.mode == "slow":
                    st["slow_bytes"] += 1
                    send(s, b"a", now)
                else:
                    st["garbage_bytes"] += 64
                    send(s, os.urandom(64), now)
        # all opened once, and nearly every connect settled (some may wait
        # for a SYN to be sent again while the server's backlog is full)
        if not ready and (pending < n // 20 or now - t0 > 3):
            ready = True
            st["ready_s"] = round(now - t0, 2)
            with open(ready_file, "w") as f:
                f.write("ready\n")
    for s in slots:
        if s.sock is not None:
            sel.unregister(s.sock)
            s.sock.close()
    st["open_at_end"] = open_now
    st["elapsed_s"] = round(time.monotonic() - t0, 1)
    print(" ".join("%s=%s" % kv for kv in st.items()))


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def get(port, source, auth, timeout=5.0):
    """One GET /metrics on a new connection: (status, body, seconds)."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=(source, 0))
    try:
        c.request("GET", "/metrics", headers={"Authorization": auth})
        r = c.getresponse()
        body = r.read()
        return r.status, body, time.monotonic() - t0
    finally:
        c.close()


def flood(port, seconds, user, stop_file, threads=16, limit=20000):
    t0 = time.monotonic()
    t_end = t0 + seconds
    lock = threading.Lock()
    codes = {}
    sent = [0]

    def run(k):
        while time.monotonic() < t_end and not os.path.exists(stop_file):
            with lock:
                if sent[0] >= limit:
                    return
                sent[0] += 1
                i = sent[0]
            try:
                code = get(port, "127.0.0.50", basic(user, "guess-%d-%d" % (k, i)),
                           timeout=2.0)[0]
            except (OSError, http.client.HTTPException) as e:
                code = "error_" + type(e).__name__
            with lock:
                codes[code] = codes.get(code, 0) + 1

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("requests=%d %s elapsed_s=%.1f" % (sent[0], " ".join(
        "code_%s=%d" % (k, v) for k, v in sorted(codes.items(), key=str)),
        time.monotonic() - t0))


def scrape(port, n, spacing, user, password, pid, ready_file):
    auth = basic(user, password)
    codes, ms, rss, thr, fds = [], [], [], [], []
    body_ok = 0
    t0 = time.monotonic()
    while not os.path.exists(ready_file) and time.monotonic() - t0 < 30:
        time.sleep(0.05)
    t0 = time.monotonic()
    for i in range(n):
        # spread over the attack; never more than n * spacing + 10 s
        while time.monotonic() < t0 + i * spacing:
            time.sleep(0.05)
        r, t, f = proc_status(pid)
        rss.append(r)
        thr.append(t)
        fds.append(f)
        try:
            code, body, secs = get(port, "127.0.0.1", auth)
        except (OSError, http.client.HTTPException):
            code, body, secs = "error", b"", 5.0
        codes.append(str(code))
        ms.append(int(secs * 1000))
        body_ok += code == 200 and b"\nusage_source_up{" in body
        r, t, f = proc_status(pid)
        rss.append(r)
        thr.append(t)
        fds.append(f)
        if time.monotonic() - t0 > n * spacing + 10:
            break
    print("codes=%s ms=%s max_ms=%d median_ms=%d body_ok=%d rss_kb_first=%d "
          "rss_kb_last=%d rss_kb_max=%d threads_min=%d threads_max=%d "
          "fds_max=%d" % (
              ",".join(codes), ",".join(map(str, ms)), max(ms),
              int(statistics.median(ms)), body_ok, rss[0], rss[-1], max(rss),
              min(thr), max(thr), max(fds)))


def slowloris(port, n, every, limit):
    """n connections each send a request line and then one header byte
    every `every` s, never ending the request; the seconds from each
    connect to the server closing it (or "open" at `limit` s)."""
    socks, closed = [], {}
    t0 = time.monotonic()
    for _ in range(n):
        so = socket.create_connection(("127.0.0.1", port), timeout=5)
        so.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        so.setblocking(False)
        socks.append((so, time.monotonic()))
    next_send = time.monotonic() + every
    while len(closed) < n and time.monotonic() - t0 < limit:
        now = time.monotonic()
        for i, (so, t) in enumerate(socks):
            if i in closed:
                continue
            try:
                gone = so.recv(4096) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if not gone and now >= next_send:
                try:
                    so.send(b"a")
                except OSError:
                    gone = True
            if gone:
                closed[i] = now - t
        if now >= next_send:
            next_send = now + every
        time.sleep(0.05)
    for so, _ in socks:
        so.close()
    secs = [closed.get(i) for i in range(n)]
    print("closed_s=%s closed=%d min_s=%s max_s=%s" % (
        ",".join("open" if v is None else "%.2f" % v for v in secs), len(closed),
        "%.2f" % min(closed.values()) if closed else "none",
        "%.2f" % max(closed.values()) if closed else "none"))


def main():
    cmd = sys.argv[1]
    if cmd == "attack":
        attack(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "flood":
        flood(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif cmd == "scrape":
        scrape(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
               sys.argv[5], sys.argv[6], int(sys.argv[7]), sys.argv[8])
    elif cmd == "slowloris":
        slowloris(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                  float(sys.argv[5]))
    elif cmd == "status":
        print("rss_kb=%d threads=%d fds=%d" % proc_status(int(sys.argv[2])))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
