#!/usr/bin/env python3
"""Soak: mixed load against a real `authd serve` for a while, reporting memory, p99 and errors
over time. Memory must level off and errors must be zero; the exit status says whether they did.

Memory is judged by the anonymous (private) part of RSS: heap, stacks, and pages the process
wrote. That is what a host runs out of. The file-backed part, the pages of the binary and the C
library, is printed too but not judged: it is shared and the kernel can reclaim it.

Bounded caches fill in the first minutes, so "flat" is judged on the last third of the run:
anonymous memory may grow there by at most --max-growth (10 %).

    python3 bench/soak.py [path/to/authd] [--minutes 10] [--clients 16] [--every 10] [--cooldown 60]

After the load, it goes on reporting memory for `--cooldown` seconds of idleness; anonymous
memory must then be at most --idle-target MB (20, the issue's figure: 10^6 bytes, so 19.07 MiB).

Loopback only; the server gets a fresh data directory and rate limits off. Standard library only.
"""
import argparse, http.client, json, os, random, signal, socket, subprocess, sys, tempfile, threading, time

PASSWORD = "correct horse battery staple"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def anon_kib(pid):
    return memory_kib(pid)["RssAnon"]


def memory_kib(pid):
    """VmRSS and its parts: RssAnon (heap, stacks) and RssFile (the binary's and libraries' pages)."""
    found = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name = line.split(":")[0]
            if name in found:
                found[name] = int(line.split()[1])
    return found


def where(pid):
    """Resident KiB by mapping: the heap, anonymous mappings (arenas, stacks), each file."""
    totals, name = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else None
                if name is None:
                    lo, hi = (int(x, 16) for x in head[0].split("-"))
                    name = f"[anonymous {(hi - lo) // 1024} KiB {head[1]}]"
                name = os.path.basename(name) if name.startswith("/") else name
            elif head[0] in ("Rss:", "Anonymous:"):
                t = totals.setdefault(name, [0, 0, 0])
                t[0 if head[0] == "Rss:" else 1] += int(head[1])
                t[2] += head[0] == "Rss:"
    return sorted(totals.items(), key=lambda kv: -kv[1][0])


def split(m):
    return f"{m['RssAnon'] / 1024:6.1f} {m['RssFile'] / 1024:6.1f}"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.errors = 0
        self.requests = 0
        self.kinds = {}

    def record(self, seconds, ok, what=""):
        with self.lock:
            self.latencies.append(seconds)
            self.requests += 1
            self.errors += 0 if ok else 1
            if not ok:
                self.kinds[what] = self.kinds.get(what, 0) + 1

    def take(self):
        with self.lock:
            lat, self.latencies = self.latencies, []
            return lat


def call(conn, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    kind = r.getheader("content-type", "")
    parsed = json.loads(data) if data and (kind.startswith("application/json") or kind.startswith("application/problem+json")) else None
    return r.status, parsed


def what(method, path, status, body):
    code = body.get("code", "") if isinstance(body, dict) else ""
    return f"{method} {path} {status} {code}".strip()


def client(n, port, stats, stop):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while not stop.is_set():
        i += 1
        email = f"soak{n}-{i}@example.com"
        try:
            t0 = time.monotonic()
            status, body = call(conn, "POST", "/v1/auth/register", {"email": email, "password": PASSWORD})
            stats.record(time.monotonic() - t0, status == 201, what("POST", "/v1/auth/register", status, body))
            t0 = time.monotonic()
            status, tokens = call(conn, "POST", "/v1/auth/login", {"login": email, "password": PASSWORD})
            stats.record(time.monotonic() - t0, status == 200, what("POST", "/v1/auth/login", status, tokens))
            if status != 200:
                continue
            access, refresh = tokens["access_token"], tokens["refresh_token"]
            for _ in range(random.randint(5, 20)):
                t0 = time.monotonic()
                status, body = call(conn, "GET", "/v1/me", token=access)
                stats.record(time.monotonic() - t0, status == 200, what("GET", "/v1/me", status, body))
            t0 = time.monotonic()
            status, tokens = call(conn, "POST", "/v1/auth/refresh", {"refresh_token": refresh})
            stats.record(time.monotonic() - t0, status == 200, what("POST", "/v1/auth/refresh", status, tokens))
            if status == 200:
                access = tokens["access_token"]
            t0 = time.monotonic()
            status, body = call(conn, "POST", "/v1/auth/logout", {}, token=access)
            stats.record(time.monotonic() - t0, status == 204, what("POST", "/v1/auth/logout", status, body))
        except (OSError, http.client.HTTPException) as e:
            stats.record(0.0, False, type(e).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="target/release/authd")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--every", type=float, default=10, help="seconds between reports")
    ap.add_argument("--max-growth", type=float, default=1.10,
                    help="largest allowed ratio of anonymous memory over the last third of the run, last/start of that third")
    ap.add_argument("--cooldown", type=float, default=60, help="seconds of memory reports after the load stops")
    ap.add_argument("--where", action="store_true", help="after the cooldown, print resident memory by mapping")
    ap.add_argument("--idle-target", type=float, default=20, help="largest allowed anonymous memory in MB (10^6 bytes) after the cooldown")
    args = ap.parse_args()

    work = tempfile.mkdtemp()
    os.chmod(work, 0o700)
    port = free_port()
    env = dict(os.environ, AUTHD_SERVER__BIND=f"127.0.0.1:{port}", AUTHD_STORAGE__PATH=f"{work}/authd.redb",
               AUTHD_RATE_LIMIT__ENABLED="false", AUTHD_LOG__LEVEL="warn",
               # Logins in flight count as failures until they succeed; all clients share one
               # address, so keep them under the challenge threshold.
               AUTHD_BRUTE_FORCE__CHALLENGE_AFTER="100")
    server = subprocess.Popen([args.binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            break
        except OSError:
            time.sleep(0.1)

    stats, stop = Stats(), threading.Event()
    threads = [threading.Thread(target=client, args=(n, port, stats, stop), daemon=True) for n in range(args.clients)]
    for t in threads:
        t.start()
    print(f"{'elapsed':>8} {'RSS MiB':>8} {'anon':>6} {'file':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>7}")
    start, anon, after = time.monotonic(), [], 0.0
    try:
        while time.monotonic() - start < args.minutes * 60:
            time.sleep(args.every)
            lat = sorted(stats.take())
            m = memory_kib(server.pid)
            anon.append(m["RssAnon"] / 1024)
            p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0
            print(f"{time.monotonic() - start:8.0f} {m['VmRSS'] / 1024:8.1f} {split(m)} {len(lat) / args.every:8.0f} {p(0.5):8.2f} "
                  f"{p(0.99):8.2f} {stats.errors:7d}", flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=15)
        # After the storm: how far memory comes back down once the server is idle.
        quiet = time.monotonic()
        while time.monotonic() - quiet < args.cooldown:
            time.sleep(min(args.every, max(0.0, args.cooldown - (time.monotonic() - quiet))))
            m = memory_kib(server.pid)
            after = m["RssAnon"] / 1024
            print(f"{time.monotonic() - start:8.0f} {m['VmRSS'] / 1024:8.1f} {split(m)}    (idle)", flush=True)
        if args.where:
            for name, (rss_k, anon_k, count) in where(server.pid):
                if rss_k >= 64:
                    print(f"  {rss_k / 1024:6.2f} MiB  anon {anon_k / 1024:6.2f}  {count:3d} mappings  {name}")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    settled = anon[(2 * len(anon)) // 3] if anon else 0.0
    growth = anon[-1] / settled if settled else 1.0
    print(f"requests {stats.requests}, errors {stats.errors}, anonymous memory first {anon[0]:.1f} MiB, at two "
          f"thirds {settled:.1f} MiB, last {anon[-1]:.1f} MiB (x{growth:.2f} over the last third), "
          f"{after:.1f} MiB after {args.cooldown:.0f} s idle")
    for kind, n in sorted(stats.kinds.items()):
        print(f"  error: {kind} × {n}")
    flat = growth <= args.max_growth
    calm = args.cooldown <= 0 or after * 2**20 <= args.idle_target * 1e6
    if stats.errors or not flat or not calm:
        print("FAIL:" + (" errors;" if stats.errors else "") + (" anonymous memory still growing;" if not flat else "")
              + (f" anonymous memory {after:.1f} MiB after the storm, above {args.idle_target:g} MB "
                 f"({args.idle_target * 1e6 / 2**20:.2f} MiB)" if not calm else ""))
        return 1
    print("ok: no errors, anonymous memory levelled off and came back down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
