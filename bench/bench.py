"""Benchmark `obsdvpn-agent serve` and `check` beside Debian's node_exporter.

    .venv/bin/python bench/bench.py        (or: make bench)

For a demo host of 10, 100, 1000 and 5000 sessions it starts `serve` (with a
long --interval, so every scrape hits the bytes rendered by the first
collection) and `prometheus-node-exporter` serving, from its textfile
collector, the agent's own exposition (`obsdvpn-agent metrics`) of the same
host, so both serve the same series.  Each is scraped the same way: one
keep-alive HTTP/1.1 connection on loopback, a few hundred GET /metrics after a
warm-up.  It reports scrape latency p50/p99, server CPU per scrape (psutil
cpu_times of the server process around the scrapes), the collection time, the
RSS of `serve` (after the first collection, and at 1000 sessions also after
many), and the wall time of a cold `check --quiet` (each run a new process,
what cron pays).  It prints a markdown table for the README and the issue's
targets marked met/not met, writes bench/results.json, and exits 1 when a
target is missed.  About a minute and a half on a 2-CPU machine.

It also measures what the tests assert only as behaviour (see `robustness`):
50 concurrent scrapers, idle and slow clients, a stalled TLS handshake, the
demo rendering 5000 sessions.  `bench.py robustness` runs just those.

Everything listens on 127.0.0.1, every run is bounded in scrapes and seconds,
and every process it starts is killed on the way out.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SIZES = (10, 100, 1000, 5000)
SCRAPES = 300          # measured scrapes per server and size
WARMUP = 20            # discarded first scrapes (connection set-up, first-touch allocations)
SCRAPE_BUDGET_S = 15   # ... but never more than this per server and size
CHECK_RUNS = 10        # cold `check --quiet` runs at the demo default (3 sessions)
CHECK_RUNS_PER_SIZE = 5
READY_TIMEOUT_S = 60
TARGET_SIZE = 1000     # the size the targets are stated at
STEADY_INTERVAL_S = 0.5  # ... where `serve` also runs back-to-back collections
STEADY_WATCH_S = 10

# What a scrape asks for.  "plain" is the raw cost of the bytes; "prometheus"
# is what Prometheus 2.x sends (OpenMetrics preferred, gzip accepted).
PLAIN = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "identity"}
PROMETHEUS = {"Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
              "Accept-Encoding": "gzip"}

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


def agent_env(work: Path) -> dict[str, str]:
    """The agent's environment: bytecode cached, as on an installed system.

    pip and OpenBSD packages install .pyc files; an editable install run with
    PYTHONDONTWRITEBYTECODE=1 (as some CI images set) would compile every
    module of the agent on every start instead.  A private cache directory
    gives the installed behaviour without writing into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


ENV: dict[str, str] = dict(os.environ)  # set by main() once the work directory exists


def agent_argv() -> list[str]:
    # The console script beside this interpreter is what an admin runs; -m is
    # the fallback when the bench runs from a source tree without it.
    script = Path(sys.executable).parent / "obsdvpn-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "obsdvpn_agent"]


def node_exporter_path() -> str:
    path = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
    if not os.access(path, os.X_OK):
        sys.exit("bench: prometheus-node-exporter not found; `make deps` installs it")
    return path


def node_exporter_argv(textdir: Path, port: int) -> list[str]:
    """node_exporter serving only the textfiles of TEXTDIR, on 127.0.0.1:PORT."""
    return [node_exporter_path(), "--collector.disable-defaults", "--collector.textfile",
            f"--collector.textfile.directory={textdir}", f"--web.listen-address=127.0.0.1:{port}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(body: bytes) -> list[bytes]:
    """The sample lines of a text exposition (no HELP/TYPE/EOF)."""
    return [line for line in body.splitlines() if line and not line.startswith(b"#")]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: p99 of 300 scrapes is the 3rd slowest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Processes:
    """Every process the bench started, so each one is killed on the way out."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        with open(log, "wb") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env)
        self.running.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.running:
            self.running.remove(p)

    def stop_all(self) -> None:
        for p in list(self.running):
            self.stop(p)


class Scraper:
    """One keep-alive HTTP/1.1 connection, like Prometheus keeps per target."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = headers
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.reconnects = -1
        self._connect()

    def _connect(self) -> None:
        self.conn.close()
        self.conn.connect()
        # The request goes out in one write; NODELAY anyway so the client side
        # can never add Nagle's delay to what is measured.
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reconnects += 1

    def get(self) -> tuple[float, bytes, http.client.HTTPResponse]:
        if self.conn.sock is None:  # the server closed the connection: count it
            self._connect()
        t0 = time.perf_counter()
        self.conn.request("GET", "/metrics", headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"127.0.0.1:{self.port}/metrics: HTTP {resp.status}")
        return elapsed, body, resp

    def close(self) -> None:
        self.conn.close()


@dataclass
class ScrapeStats:
    scrapes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_per_scrape_ms: float
    body_bytes: int
    reconnects: int


def measure_scrapes(port: int, pid: int, headers: dict[str, str], n: int = SCRAPES,
                    budget_s: float = SCRAPE_BUDGET_S) -> ScrapeStats:
    proc = psutil.Process(pid)
    client = Scraper(port, headers)
    try:
        for _ in range(WARMUP):
            client.get()
        before = proc.cpu_times()
        latencies: list[float] = []
        deadline = time.monotonic() + budget_s
        size = 0
        while len(latencies) < n and (len(latencies) < 50 or time.monotonic() < deadline):
            elapsed, body, _ = client.get()
            latencies.append(elapsed)
            size = len(body)
        after = proc.cpu_times()
    finally:
        client.close()
    cpu = (after.user - before.user) + (after.system - before.system)
    return ScrapeStats(len(latencies), statistics.median(latencies) * 1e3,
                       percentile(latencies, 99) * 1e3, max(latencies) * 1e3,
                       cpu / len(latencies) * 1e3, size, client.reconnects)


def wait_ready(p: subprocess.Popen, port: int, log: Path, start: float) -> tuple[float, bytes]:
    """Poll until /metrics answers 200; return the seconds since `start` and the body."""
    while time.monotonic() - start < READY_TIMEOUT_S:
        if p.poll() is not None:
            raise RuntimeError(f"{p.args[0]} exited {p.returncode}:\n{log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=READY_TIMEOUT_S)
            conn.request("GET", "/metrics", headers=PLAIN)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200:
                return time.monotonic() - start, body
        except (ConnectionError, OSError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{p.args[0]} not ready after {READY_TIMEOUT_S}s:\n"
                       f"{log.read_text()[-2000:]}")


# Times one collection as `serve` does it, in a fresh interpreter so the bench's
# own imports and heap stay out of it: server.Collector.collect_once, the very
# code `serve` runs, then the same steps one by one to show where the time goes
# (the steps mirror collect_once; the total is what counts).
COLLECT_SCRIPT = r"""
import gzip, json, statistics, sys, time
from obsdvpn_agent.config import load
from obsdvpn_agent.host.demo import DemoHost
from obsdvpn_agent.server import Collector, landing_page
from obsdvpn_agent.probes import gather
from obsdvpn_agent.checks import evaluate
from obsdvpn_agent.metrics import render
path, runs = sys.argv[1], int(sys.argv[2])
c = Collector(lambda: DemoHost(path), lambda: load(None), 3600.0)
cfg = c.cfg
total, steps = [], {}
def step(name, f):
    t0 = time.perf_counter()
    r = f()
    steps.setdefault(name, []).append(time.perf_counter() - t0)
    return r
for _ in range(runs):
    t0 = time.perf_counter()
    c.collect_once()
    total.append(time.perf_counter() - t0)
    facts = step("gather", lambda: gather(DemoHost(path), cfg))
    results = step("evaluate", lambda: evaluate(facts, cfg))
    text = step("render_text", lambda: render(facts, results, cfg))
    om = step("render_openmetrics", lambda: render(facts, results, cfg, None, openmetrics=True))
    step("gzip", lambda: (gzip.compress(text, 5), gzip.compress(om, 5)))
    step("landing_page", lambda: landing_page(facts, results))
print(json.dumps({"total_ms": statistics.median(total) * 1e3,
                  "steps_ms": {k: statistics.median(v) * 1e3 for k, v in steps.items()}}))
"""


def collection_times(state: Path, runs: int = 3) -> dict:
    out = subprocess.run([sys.executable, "-c", COLLECT_SCRIPT, str(state), str(runs)],
                         capture_output=True, text=True, timeout=120, check=True, env=ENV)
    return json.loads(out.stdout)


def collector_durations(body: bytes) -> dict[str, float]:
    prefix = b"obsdvpn_collector_duration_seconds{collector=\""
    out = {}
    for line in samples(body):
        if line.startswith(prefix):
            name, _, value = line[len(prefix):].partition(b"\"} ")
            out[name.decode()] = float(value)
    return out


def cold_checks(state: Path, runs: int, env: dict[str, str] | None = None) -> dict:
    argv = agent_argv() + ["--demo-state", str(state), "check", "--quiet"]
    env = ENV if env is None else env
    # Writes the .pyc; not timed.
    subprocess.run(argv, check=False, capture_output=True, timeout=60, env=env)
    walls, codes = [], set()
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(argv, check=False, capture_output=True, timeout=60, env=env)
        walls.append(time.perf_counter() - t0)
        codes.add(p.returncode)
    return {"runs": runs, "median_ms": statistics.median(walls) * 1e3,
            "min_ms": min(walls) * 1e3, "max_ms": max(walls) * 1e3,
            "exit_codes": sorted(codes)}


def reset_demo(state: Path, sessions: int | None) -> None:
    extra = ["--sessions", str(sessions)] if sessions is not None else []
    subprocess.run(agent_argv() + ["--demo-state", str(state), "demo", "reset"] + extra,
                   check=True, capture_output=True, timeout=60, env=ENV)


def write_textfile(state: Path, directory: Path) -> int:
    """The agent's exposition as node_exporter's textfile; returns its sample count."""
    out = subprocess.run(agent_argv() + ["--demo-state", str(state), "metrics"],
                         check=True, capture_output=True, timeout=120, env=ENV).stdout
    tmp = directory / ".obsdvpn.prom.tmp"  # node_exporter reads only *.prom
    tmp.write_bytes(out)
    tmp.replace(directory / "obsdvpn.prom")
    return len(samples(out))


def serve_argv(state: Path, port: int, interval: float) -> list[str]:
    return agent_argv() + ["--demo-state", str(state), "serve", "--listen",
                           f"127.0.0.1:{port}", "--interval", str(interval)]


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def steady_rss(state: Path, work: Path, procs: Processes) -> dict:
    """RSS of `serve` once it has collected many times, not just once.

    A long-running exporter holds the previous collection while it makes the
    next one, and the allocator keeps what the collections freed; so the RSS an
    admin sees after a while is above the one after the first collection.
    """
    port = free_port()
    log = work / "serve-steady.log"
    t0 = time.monotonic()
    agent = procs.start(serve_argv(state, port, STEADY_INTERVAL_S), log, ENV)
    try:
        wait_ready(agent, port, log, t0)
        peak = last = rss_mb(agent.pid)
        end = time.monotonic() + STEADY_WATCH_S
        while time.monotonic() < end:
            time.sleep(0.1)
            last = rss_mb(agent.pid)
            peak = max(peak, last)
    finally:
        procs.stop(agent)
    return {"interval_s": STEADY_INTERVAL_S, "watched_s": STEADY_WATCH_S, "last_mb": last,
            "peak_mb": peak}


def bench_size(n: int, work: Path, procs: Processes) -> dict:
    state = work / f"demo-{n}.json"
    reset_demo(state, n)
    textdir = work / f"textfile-{n}"
    textdir.mkdir()
    textfile_series = write_textfile(state, textdir)

    a_port, n_port = free_port(), free_port()
    a_log, n_log = work / f"serve-{n}.log", work / f"node-{n}.log"
    a_start = time.monotonic()
    agent = procs.start(serve_argv(state, a_port, 3600), a_log, ENV)
    n_start = time.monotonic()
    node = procs.start(node_exporter_argv(textdir, n_port), n_log)
    try:
        agent_ready_s, agent_body = wait_ready(agent, a_port, a_log, a_start)
        _, node_body = wait_ready(node, n_port, n_log, n_start)
        time.sleep(0.5)  # let the collector thread finish its last bookkeeping
        rss_idle = rss_mb(agent.pid)

        node_samples = samples(node_body)
        node_obsdvpn = sum(1 for s in node_samples if s.startswith(b"obsdvpn_"))
        textfile_error = [s for s in node_samples if s.startswith(b"node_textfile_scrape_error")]
        if node_obsdvpn != textfile_series or textfile_error != [b"node_textfile_scrape_error 0"]:
            raise RuntimeError(f"node_exporter serves {node_obsdvpn} of the textfile's "
                               f"{textfile_series} series ({textfile_error})")

        agent_stats = measure_scrapes(a_port, agent.pid, PLAIN)
        node_stats = measure_scrapes(n_port, node.pid, PLAIN)
        result = {
            "sessions": n,
            "agent_series": len(samples(agent_body)),
            "textfile_series": textfile_series,
            "node_series_total": len(node_samples),
            "node_series_obsdvpn": node_obsdvpn,
            "agent": vars(agent_stats),
            "node_exporter": vars(node_stats),
            "ratio_p50": agent_stats.p50_ms / node_stats.p50_ms,
            "serve_ready_s": agent_ready_s,
            "serve_rss_idle_mb": rss_idle,
            "serve_rss_after_scrapes_mb": rss_mb(agent.pid),
            "node_rss_mb": rss_mb(node.pid),
            "collector_duration_seconds": collector_durations(agent_body),
        }
        if n == TARGET_SIZE:
            # What Prometheus really sends: OpenMetrics preferred, gzip accepted.
            a = measure_scrapes(a_port, agent.pid, PROMETHEUS, n=100, budget_s=8)
            b = measure_scrapes(n_port, node.pid, PROMETHEUS, n=100, budget_s=8)
            result["prometheus_headers"] = {"agent": vars(a), "node_exporter": vars(b),
                                            "ratio_p50": a.p50_ms / b.p50_ms}
    finally:
        procs.stop(agent)
        procs.stop(node)
    if n == TARGET_SIZE:
        result["serve_rss_steady"] = steady_rss(state, work, procs)
    collection = collection_times(state)
    result["collection_ms"] = collection["total_ms"]
    result["collection_steps_ms"] = collection["steps_ms"]
    result["check_quiet"] = cold_checks(state, CHECK_RUNS_PER_SIZE)
    return result


# ---------------------------------------------------------------------------
# Robustness figures: how fast `serve` stays under many scrapers, idle and slow
# clients and a stalled TLS handshake, and how fast the demo renders 5000
# sessions.  tests/test_load.py, tests/test_exposure.py and
# tests/test_demo_events.py assert that these things work; how soon is measured
# here, with the bounds those tests used to assert.

LOAD_SCRAPERS = 50
LOAD_DURATION_S = 5.0
LOAD_MAX_REQUESTS = 400        # per scraper
LOAD_INTERVAL_S = 1.0


def scrape(conn: http.client.HTTPConnection, path: str = "/metrics") -> bytes:
    """One GET on conn; anything but 200 is an error naming the status."""
    conn.request("GET", path, headers={"Accept-Encoding": "identity"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise AssertionError(f"HTTP {r.status}: {body[:200]!r}")
    return body


_STAMP = re.compile(rb"^obsdvpn_last_collection_timestamp_seconds (\S+)$", re.MULTILINE)


def load(host: str, port: int, duration_s: float, scrapers: int = LOAD_SCRAPERS,
         max_requests: int = LOAD_MAX_REQUESTS) -> dict:
    """`scrapers` threads for duration_s, half on keep-alive connections, half opening
    one per scrape: latencies (sorted), errors, the collection timestamps served.
    The one load generator: tests/test_load.py asserts behaviour with it, this file
    measures with it."""
    latencies: list[float] = []
    errors: list[str] = []
    stamps: set[str] = set()
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + duration_s

    def scraper(n: int) -> None:
        keep = n % 2 == 0
        conn = http.client.HTTPConnection(host, port, timeout=10)
        mine: list[float] = []
        seen: set[str] = set()
        try:
            for _ in range(max_requests):
                if time.monotonic() >= stop_at:
                    break
                if not keep:
                    conn = http.client.HTTPConnection(host, port, timeout=10)
                t0 = time.perf_counter()
                body = scrape(conn)
                mine.append(time.perf_counter() - t0)
                m = _STAMP.search(body)
                seen.add(m.group(1).decode() if m else "missing")
                if not keep:
                    conn.close()
                time.sleep(0.005)                # a scraper is not a tight loop
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            with lock:
                errors.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                stamps.update(seen)

    threads = [threading.Thread(target=scraper, args=(n,)) for n in range(scrapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration_s + 30)
    latencies.sort()
    return {"latencies": latencies, "errors": errors, "stamps": stamps,
            "elapsed": time.monotonic() - start,
            "p50": percentile(latencies, 50) if latencies else None,
            "p99": percentile(latencies, 99) if latencies else None}


def load_scrapers(port: int) -> dict:
    """LOAD_SCRAPERS threads for LOAD_DURATION_S, half keep-alive, half a connection each."""
    r = load("127.0.0.1", port, LOAD_DURATION_S)
    lat, errors = r["latencies"], r["errors"]     # sorted
    return {"scrapers": LOAD_SCRAPERS, "seconds": r["elapsed"], "served": len(lat),
            "errors": errors[:5], "error_count": len(errors),
            "p50_ms": r["p50"] * 1e3 if lat else None,
            "p99_ms": r["p99"] * 1e3 if lat else None,
            "max_ms": lat[-1] * 1e3 if lat else None}


def idle_and_slow_clients(port: int) -> dict:
    """Slowest of 20 scrapes while 60 idle sockets, a dribbler and a slow reader hang on."""
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    dribbler = socket.create_connection(("127.0.0.1", port))
    dribbler.sendall(request[:5])
    slow_reader = socket.socket()
    slow_reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    slow_reader.connect(("127.0.0.1", port))
    for _ in range(20):
        slow_reader.sendall(request)
    stop = threading.Event()

    def dribble() -> None:
        for b in request[5:]:
            if stop.wait(0.1):
                return
            dribbler.sendall(bytes([b]))

    def read_slowly() -> None:
        while not stop.wait(0.1):
            try:
                if not slow_reader.recv(1):
                    return
            except OSError:
                return

    helpers = [threading.Thread(target=dribble, daemon=True),
               threading.Thread(target=read_slowly, daemon=True)]
    for t in helpers:
        t.start()
    latencies = []
    try:
        for _ in range(20):
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            scrape(conn)
            conn.close()
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.05)
    finally:
        stop.set()
        for sock in [*idle, dribbler, slow_reader]:
            sock.close()
    return {"scrapes": len(latencies), "slowest_ms": max(latencies) * 1e3}


def tls_stalled_client(state: Path, work: Path, procs: Processes) -> dict:
    """GET / over HTTPS while another client has connected and never handshakes."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return {"error": "openssl not found"}
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    log = work / "serve-tls.log"
    agent = procs.start(agent_argv() + ["--demo-state", str(state), "serve", "--listen",
                                        f"127.0.0.1:{port}", "--tls-cert", str(cert),
                                        "--tls-key", str(key)], log, ENV)
    tls = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=tls)
                scrape(conn)
                conn.close()
                break
            except (OSError, ssl.SSLError) as exc:
                if agent.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"TLS serve not ready:\n{log.read_text()[-2000:]}") from exc
                time.sleep(0.05)
        stalled = socket.create_connection(("127.0.0.1", port))
        try:
            t0 = time.perf_counter()
            conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=tls)
            scrape(conn, "/")
            conn.close()
            took = time.perf_counter() - t0
        finally:
            stalled.close()
    finally:
        procs.stop(agent)
    return {"page_ms": took * 1e3}


# The demo renders its command outputs from its state; 5000 sessions, in a fresh
# interpreter (the bench's own heap stays out of it), median of 5.
RENDER_SCRIPT = r"""
import json, statistics, sys, tempfile, time
from pathlib import Path
from obsdvpn_agent import commands as table
from obsdvpn_agent.host.demo import DemoHost, commands, events
now = 1_714_570_000.0
host = DemoHost(Path(tempfile.mkdtemp()) / "big.json", clock=lambda: now)
host.store.replace(events.reset(now, 5000))
state = host.store.read()
argvs = ((table.NPPPCTL, "-n", "session", "all"), (table.IFCONFIG, "pppx"),
         (table.IPSECCTL, "-sa"))
walls = []
for _ in range(5):
    t0 = time.perf_counter()
    outputs = [commands.run_command(state, argv, now, True)[1] for argv in argvs]
    walls.append(time.perf_counter() - t0)
assert outputs[0].count("Ppp Id = ") == 5000
print(json.dumps({"sessions": 5000, "median_ms": statistics.median(walls) * 1e3}))
"""


def demo_render() -> dict:
    out = subprocess.run([sys.executable, "-c", RENDER_SCRIPT], capture_output=True, text=True,
                         timeout=120, check=True, env=ENV)
    return json.loads(out.stdout)


def robustness(work: Path, procs: Processes) -> dict:
    state = work / "demo-robustness.json"
    reset_demo(state, None)
    port = free_port()
    log = work / "serve-load.log"
    t0 = time.monotonic()
    agent = procs.start(serve_argv(state, port, LOAD_INTERVAL_S), log, ENV)
    try:
        wait_ready(agent, port, log, t0)
        load("127.0.0.1", port, 1.0)             # warm up: threads, buffers, first renders
        scrapers = load_scrapers(port)
        slow = idle_and_slow_clients(port)
    finally:
        procs.stop(agent)
    return {"load_50_scrapers": scrapers, "load_idle_and_slow_clients": slow,
            "tls_stalled_client": tls_stalled_client(state, work, procs),
            "demo_render_5000_sessions": demo_render()}


def robustness_targets(r: dict) -> list[tuple[str, str, bool]]:
    load, slow = r["load_50_scrapers"], r["load_idle_and_slow_clients"]
    tls, render = r["tls_stalled_client"], r["demo_render_5000_sessions"]
    p99 = load["p99_ms"]
    return [
        ((f"{LOAD_SCRAPERS} concurrent scrapers: no error, >= {LOAD_SCRAPERS * 10} scrapes "
         f"in {LOAD_DURATION_S:g} s"), f"{load['served']} scrapes, {load['error_count']} errors",
         load["error_count"] == 0 and load["served"] >= LOAD_SCRAPERS * 10),
        (f"{LOAD_SCRAPERS} concurrent scrapers: p99 < 200 ms",
         "-" if p99 is None else f"{p99:.1f} ms", p99 is not None and p99 < 200),
        ("slowest of 20 scrapes beside 60 idle sockets, a dribbler, a slow reader < 500 ms",
         f"{slow['slowest_ms']:.1f} ms", slow["slowest_ms"] < 500),
        ("HTTPS page while a client stalls its handshake < 1 s",
         tls.get("error") or f"{tls['page_ms']:.1f} ms",
         "page_ms" in tls and tls["page_ms"] < 1000),
        ("demo renders 5000 sessions (npppctl, ifconfig, ipsecctl) < 100 ms",
         f"{render['median_ms']:.1f} ms", render["median_ms"] < 100),
    ]


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = subprocess.run([node_exporter_path(), "--version"], check=False, capture_output=True,
                          text=True).stdout.splitlines()
    agent = subprocess.run(agent_argv() + ["--version"], check=False, capture_output=True,
                           text=True, env=ENV).stdout.strip()
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "agent": agent,
            "node_exporter": node[0] if node else "?",
            # Other work on the machine shows up in every number: keep the load with them.
            "loadavg_1m_at_start": os.getloadavg()[0]}


def targets(results: dict) -> list[tuple[str, str, bool]]:
    at = next(r for r in results["sizes"] if r["sessions"] == TARGET_SIZE)
    check = results["check_quiet_demo_default"]["median_ms"]
    return [
        (f"scrape p50 ratio agent/node_exporter at {TARGET_SIZE} sessions <= 0.05",
         f"{at['ratio_p50']:.3f}", at["ratio_p50"] <= 0.05),
        (f"scrape p99 at {TARGET_SIZE} sessions < 10 ms", f"{at['agent']['p99_ms']:.2f} ms",
         at["agent"]["p99_ms"] < 10),
        (f"`serve` RSS at {TARGET_SIZE} sessions < 35 MB (after the first collection)",
         f"{at['serve_rss_idle_mb']:.1f} MB", at["serve_rss_idle_mb"] < 35),
        ("cold `check --quiet` on the demo host < 150 ms wall", f"{check:.0f} ms", check < 150),
    ] + robustness_targets(results["robustness"])


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        (f"Measured by `make bench` on {m['cpu']} ({m['cpus']} CPUs, load "
        f"{m['loadavg_1m_at_start']:.1f} at start), Linux {m['kernel']}, Python {m['python']}, "
        f"{m['agent']}, "
        f"{m['node_exporter']}. Each server: one keep-alive HTTP/1.1 connection on loopback, "
        f"{WARMUP} warm-up then up to {SCRAPES} GET /metrics (text format, no gzip); "
        "node_exporter (`--collector.disable-defaults --collector.textfile`) serves the agent's "
        "own exposition (`obsdvpn-agent metrics`) of the same demo host from a textfile."),
        "",
        ("| sessions | series (agent / node_exporter) | agent p50 | agent p99 | agent CPU/scrape "
        "| node_exporter p50 | node_exporter p99 | node_exporter CPU/scrape | p50 ratio "
        "| collection | serve RSS | cold `check --quiet` |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["sizes"]:
        a, b = r["agent"], r["node_exporter"]
        lines.append(
            f"| {r['sessions']} | {r['agent_series']} / {r['node_series_total']} "
            f"| {a['p50_ms']:.2f} ms | {a['p99_ms']:.2f} ms | {a['cpu_per_scrape_ms']:.2f} ms "
            f"| {b['p50_ms']:.2f} ms | {b['p99_ms']:.2f} ms | {b['cpu_per_scrape_ms']:.2f} ms "
            f"| {r['ratio_p50']:.3f} | {r['collection_ms']:.0f} ms "
            f"| {r['serve_rss_idle_mb']:.1f} MB | {r['check_quiet']['median_ms']:.0f} ms |")
    c = results["check_quiet_demo_default"]
    ci = results["check_quiet_demo_default_inherited_env"]
    lines += [
        "",
        ("*collection*: one `serve` collection (gather, checks, text and OpenMetrics render, "
        "gzip copies, status page; median of 3), done once per `--interval`; scrapes only copy "
        "its bytes. *serve RSS*: after the first collection, before any scrape. *cold `check "
        f"--quiet`*: median wall time of {CHECK_RUNS_PER_SIZE} runs, each a new process, "
        "bytecode cached as on an installed system. node_exporter's series count includes its "
        "own (go_, process_, promhttp_, node_textfile_)."),
        "",
        (f"- Cold `check --quiet` on the demo host (3 sessions): median {c['median_ms']:.0f} ms "
        f"(min {c['min_ms']:.0f}, max {c['max_ms']:.0f}) over {c['runs']} runs; with the "
        f"environment as inherited ({ci['note']}): {ci['median_ms']:.0f} ms."),
    ]
    at = next(r for r in results["sizes"] if r["sessions"] == TARGET_SIZE)
    st = at.get("serve_rss_steady")
    if st:
        lines.append(
            f"- `serve` RSS at {TARGET_SIZE} sessions after {st['watched_s']:.0f} s of "
            f"collections every {st['interval_s']} s: {st['last_mb']:.1f} MB (peak "
            f"{st['peak_mb']:.1f} MB), against {at['serve_rss_idle_mb']:.1f} MB after the "
            "first one.")
    ph = at.get("prometheus_headers")
    if ph:
        lines.append(
            f"- With Prometheus' own request headers (OpenMetrics, gzip) at {TARGET_SIZE} "
            f"sessions: agent p50 {ph['agent']['p50_ms']:.2f} ms, p99 "
            f"{ph['agent']['p99_ms']:.2f} ms; node_exporter p50 "
            f"{ph['node_exporter']['p50_ms']:.2f} ms, p99 {ph['node_exporter']['p99_ms']:.2f} ms; "
            f"ratio {ph['ratio_p50']:.3f}.")
    lines += ["", "| target | measured | |", "|---|---:|---|"]
    for what, value, ok in results["targets"]:
        lines.append(f"| {what} | {value} | {'met' if ok else '**not met**'} |")
    return "\n".join(lines)


def main_robustness() -> int:
    """`bench.py robustness`: only the robustness figures, printed, results.json untouched."""
    global ENV
    procs = Processes()
    work = Path(tempfile.mkdtemp(prefix="obsdvpn-bench."))
    ENV = agent_env(work)
    try:
        r = robustness(work, procs)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    rows = robustness_targets(r)
    print(json.dumps(r, indent=2))
    for what, value, ok in rows:
        print(f"{'met' if ok else 'NOT MET'}: {what}: {value}")
    return 0 if all(ok for _, _, ok in rows) else 1


def main() -> int:
    global ENV
    node_exporter_path()    # fail now, not after minutes of measuring
    procs = Processes()
    # SIGTERM/SIGHUP become SystemExit so the finally below still kills our servers.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    work = Path(tempfile.mkdtemp(prefix="obsdvpn-bench."))
    ENV = agent_env(work)
    started = time.monotonic()
    try:
        results: dict = {"machine": machine(), "sizes": []}
        demo_default = work / "demo-default.json"
        reset_demo(demo_default, None)
        results["check_quiet_demo_default"] = cold_checks(demo_default, CHECK_RUNS)
        inherited = cold_checks(demo_default, CHECK_RUNS, env=dict(os.environ))
        inherited["note"] = ("PYTHONDONTWRITEBYTECODE=1: the agent's modules compiled on every "
                             "run" if os.environ.get("PYTHONDONTWRITEBYTECODE")
                             else "bytecode written beside the sources")
        results["check_quiet_demo_default_inherited_env"] = inherited
        for n in SIZES:
            print(f"bench: {n} sessions ...", file=sys.stderr, flush=True)
            results["sizes"].append(bench_size(n, work, procs))
        print("bench: robustness ...", file=sys.stderr, flush=True)
        results["robustness"] = robustness(work, procs)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    results["targets"] = targets(results)
    results["bench_seconds"] = time.monotonic() - started
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"\n(bench took {results['bench_seconds']:.0f} s; results in {RESULTS})",
          file=sys.stderr)
    return 0 if all(ok for _, _, ok in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main_robustness() if sys.argv[1:] == ["robustness"] else main())
