#!/usr/bin/env python3
"""exporter_clients.py: well-behaved and hostile HTTP clients for
test_exporter.sh, loopback only, bounded in count and time.

  exporter_clients.py hostile PORT N ADDRS TIMEOUT URL
      open N connections from the source addresses ADDRS (comma-separated
      127.x.y.z, round robin), each sending half a request and then idling;
      then time one normal scrape of URL from 127.0.0.1 (must be 200 within
      1 s); then wait up to TIMEOUT+5 s and count the connections the server
      closed. Prints "accepted=A scrape_ms=T closed=C after_s=S".
  exporter_clients.py scrapers PORT N SECONDS ADDRS
      N threads scrape /metrics (keep-alive, gzip and OpenMetrics mixed) for
      SECONDS from ADDRS; prints "requests=R codes={...}".
  exporter_clients.py raw PORT HEX
      send the bytes (hex) and print the status code of the answer (000
      when the server closes without one).
"""
import gzip
import http.client
import select
import socket
import sys
import threading
import time
import urllib.request


def connect_from(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    return s


def hostile(port, n, addrs, timeout, url):
    addrs = addrs.split(",")
    socks = []
    for i in range(n):
        try:
            s = connect_from(addrs[i % len(addrs)], port)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        except OSError:
            pass
    time.sleep(0.3)
    # Connections the server refused (closed at once) do not count.
    alive = []
    for s in socks:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            try:
                if s.recv(1, socket.MSG_DONTWAIT) == b"":
                    s.close()
                    continue
            except OSError:
                s.close()
                continue
        alive.append(s)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            code = resp.status
            resp.read()
    except Exception:
        code = 0
    scrape_ms = (time.monotonic() - t0) * 1000
    start = time.monotonic()
    closed = set()
    while time.monotonic() - start < timeout + 5 and len(closed) < len(alive):
        pending = [s for s in alive if s.fileno() not in closed]
        r, _, _ = select.select(pending, [], [], 0.2)
        for s in r:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                closed.add(s.fileno())
    after = time.monotonic() - start
    for s in alive:
        s.close()
    print("accepted=%d scrape_code=%d scrape_ms=%.0f closed=%d after_s=%.1f"
          % (len(alive), code, scrape_ms, len(closed), after))


def scrapers(port, n, seconds, addrs):
    addrs = addrs.split(",")
    codes = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = [
        {},
        {"Accept-Encoding": "gzip"},
        {"Accept": "application/openmetrics-text;version=1.0.0,"
         "text/plain;version=0.0.4;q=0.5", "Accept-Encoding": "gzip"},
    ]

    def run(i):
        conn = None
        k = 0
        while time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection(
                    "127.0.0.1", port, timeout=10,
                    source_address=(addrs[i % len(addrs)], 0))
            h = headers[(i + k) % len(headers)]
            k += 1
            try:
                conn.request("GET", "/metrics", headers=h)
                resp = conn.getresponse()
                body = resp.read()
                code = resp.status
                if code == 200 and resp.getheader("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if code == 200 and b"usage_exporter_build_info" not in body:
                    code = -1  # a 200 with a broken body
            except Exception as e:  # noqa: BLE001
                code = type(e).__name__
                conn.close()
                conn = None
            with lock:
                codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("requests=%d codes=%s" % (sum(codes.values()),
                                    ",".join("%s:%d" % kv for kv in sorted(
                                        codes.items(), key=str))))


def raw(port, hexdata):
    s = connect_from("127.0.0.1", port)
    s.settimeout(5)
    s.sendall(bytes.fromhex(hexdata))
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    parts = data.split(b" ")
    print(parts[1].decode() if len(parts) > 1 and data.startswith(b"HTTP/")
          else "000")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "hostile":
        hostile(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                float(sys.argv[5]), sys.argv[6])
    elif cmd == "scrapers":
        scrapers(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
                 sys.argv[5])
    elif cmd == "raw":
        raw(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__)
