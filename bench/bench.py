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
RSS of `serve`, and the wall time of a cold `check --quiet` (each run a new
process, what cron pays).  It prints a markdown table for the README, the
issue's targets marked met/not met, and writes bench/results.json.

Everything listens on 127.0.0.1, every run is bounded in scrapes and seconds,
and every process it starts is killed on the way out.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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

# What a scrape asks for.  "plain" is the raw cost of the bytes; "prometheus"
# is what Prometheus 2.x sends (OpenMetrics preferred, gzip accepted).
PLAIN = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "identity"}
PROMETHEUS = {"Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
              "Accept-Encoding": "gzip"}

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"


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

    def start(self, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT)
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


def wait_ready(p: subprocess.Popen, port: int, log: Path) -> tuple[float, bytes]:
    """Poll until /metrics answers 200; return the seconds it took and the body."""
    start = time.monotonic()
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


# Times one collection as `serve` does it (gather + evaluate + two renders + two
# gzips + landing page), in a fresh interpreter so the bench's own imports and
# heap stay out of it.  Uses server.Collector, the very code `serve` runs.
COLLECT_SCRIPT = r"""
import json, sys, time
from obsdvpn_agent.config import load
from obsdvpn_agent.host.demo import DemoHost
from obsdvpn_agent.server import Collector
path, runs = sys.argv[1], int(sys.argv[2])
c = Collector(lambda: DemoHost(path), lambda: load(None), 3600.0)
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    c.collect_once()
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def collection_times(state: Path, runs: int = 3) -> list[float]:
    out = subprocess.run([sys.executable, "-c", COLLECT_SCRIPT, str(state), str(runs)],
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def collector_durations(body: bytes) -> dict[str, float]:
    prefix = b"obsdvpn_collector_duration_seconds{collector=\""
    out = {}
    for line in samples(body):
        if line.startswith(prefix):
            name, _, value = line[len(prefix):].partition(b"\"} ")
            out[name.decode()] = float(value)
    return out


def cold_checks(state: Path, runs: int) -> dict:
    argv = agent_argv() + ["--demo-state", str(state), "check", "--quiet"]
    subprocess.run(argv, capture_output=True, timeout=60)  # writes any missing .pyc; not timed
    walls, codes = [], set()
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, timeout=60)
        walls.append(time.perf_counter() - t0)
        codes.add(p.returncode)
    return {"runs": runs, "median_ms": statistics.median(walls) * 1e3,
            "min_ms": min(walls) * 1e3, "max_ms": max(walls) * 1e3,
            "exit_codes": sorted(codes)}


def reset_demo(state: Path, sessions: int | None) -> None:
    extra = ["--sessions", str(sessions)] if sessions is not None else []
    subprocess.run(agent_argv() + ["--demo-state", str(state), "demo", "reset"] + extra,
                   check=True, capture_output=True, timeout=60)


def write_textfile(state: Path, directory: Path) -> int:
    """The agent's exposition as node_exporter's textfile; returns its sample count."""
    out = subprocess.run(agent_argv() + ["--demo-state", str(state), "metrics"],
                         check=True, capture_output=True, timeout=120).stdout
    tmp = directory / ".obsdvpn.prom.tmp"  # node_exporter reads only *.prom
    tmp.write_bytes(out)
    tmp.replace(directory / "obsdvpn.prom")
    return len(samples(out))


def bench_size(n: int, work: Path, procs: Processes, node_bin: str) -> dict:
    state = work / f"demo-{n}.json"
    reset_demo(state, n)
    textdir = work / f"textfile-{n}"
    textdir.mkdir()
    textfile_series = write_textfile(state, textdir)

    a_port, n_port = free_port(), free_port()
    agent = procs.start(agent_argv() + ["--demo-state", str(state), "serve", "--listen",
                                        f"127.0.0.1:{a_port}", "--interval", "3600"],
                        work / f"serve-{n}.log")
    node = procs.start([node_bin, "--collector.disable-defaults", "--collector.textfile",
                        f"--collector.textfile.directory={textdir}",
                        f"--web.listen-address=127.0.0.1:{n_port}"],
                       work / f"node-{n}.log")
    try:
        agent_ready_s, agent_body = wait_ready(agent, a_port, work / f"serve-{n}.log")
        _, node_body = wait_ready(node, n_port, work / f"node-{n}.log")
        time.sleep(0.5)  # let the collector thread finish its last bookkeeping
        rss_idle = psutil.Process(agent.pid).memory_info().rss

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
            "node_series_total": len(node_samples),
            "node_series_obsdvpn": node_obsdvpn,
            "agent": vars(agent_stats),
            "node_exporter": vars(node_stats),
            "ratio_p50": agent_stats.p50_ms / node_stats.p50_ms,
            "serve_ready_s": agent_ready_s,
            "serve_rss_idle_mb": rss_idle / 2**20,
            "serve_rss_after_scrapes_mb": psutil.Process(agent.pid).memory_info().rss / 2**20,
            "node_rss_mb": psutil.Process(node.pid).memory_info().rss / 2**20,
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
    times = collection_times(state)
    result["collection_ms"] = statistics.median(times) * 1e3
    result["check_quiet"] = cold_checks(state, CHECK_RUNS_PER_SIZE)
    return result


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = subprocess.run([node_exporter_path(), "--version"], capture_output=True,
                          text=True).stdout.splitlines()
    agent = subprocess.run(agent_argv() + ["--version"], capture_output=True,
                           text=True).stdout.strip()
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "agent": agent,
            "node_exporter": node[0] if node else "?"}


def targets(results: dict) -> list[tuple[str, str, bool]]:
    at = next(r for r in results["sizes"] if r["sessions"] == TARGET_SIZE)
    check = results["check_quiet_demo_default"]["median_ms"]
    return [
        (f"scrape p50 ratio agent/node_exporter at {TARGET_SIZE} sessions <= 0.05",
         f"{at['ratio_p50']:.3f}", at["ratio_p50"] <= 0.05),
        (f"scrape p99 at {TARGET_SIZE} sessions < 10 ms", f"{at['agent']['p99_ms']:.2f} ms",
         at["agent"]["p99_ms"] < 10),
        (f"`serve` idle RSS at {TARGET_SIZE} sessions < 35 MB",
         f"{at['serve_rss_idle_mb']:.1f} MB", at["serve_rss_idle_mb"] < 35),
        ("cold `check --quiet` on the demo host < 150 ms wall", f"{check:.0f} ms", check < 150),
    ]


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Measured by `make bench` on {m['cpu']} ({m['cpus']} CPUs), Linux {m['kernel']}, "
        f"Python {m['python']}, {m['agent']}, {m['node_exporter']}. Scrapes: one keep-alive "
        f"HTTP/1.1 connection on loopback, {SCRAPES} GET /metrics (text format, no gzip) per "
        "server and size after a warm-up; node_exporter serves the agent's own exposition "
        "from its textfile collector.",
        "",
        "| sessions | series | agent p50 | agent p99 | agent CPU/scrape | node_exporter p50 "
        "| node_exporter p99 | node_exporter CPU/scrape | p50 ratio | collection | serve RSS "
        "| cold `check --quiet` |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["sizes"]:
        a, b = r["agent"], r["node_exporter"]
        lines.append(
            f"| {r['sessions']} | {r['agent_series']} | {a['p50_ms']:.2f} ms "
            f"| {a['p99_ms']:.2f} ms | {a['cpu_per_scrape_ms']:.2f} ms | {b['p50_ms']:.2f} ms "
            f"| {b['p99_ms']:.2f} ms | {b['cpu_per_scrape_ms']:.2f} ms | {r['ratio_p50']:.3f} "
            f"| {r['collection_ms']:.0f} ms | {r['serve_rss_idle_mb']:.1f} MB "
            f"| {r['check_quiet']['median_ms']:.0f} ms |")
    c = results["check_quiet_demo_default"]
    lines += [
        "",
        "Collection = one gather + checks + text and OpenMetrics render + gzip copies + status "
        "page, once per `--interval`; scrapes only copy its bytes. serve RSS is after the "
        "first collection, before any scrape. Cold `check --quiet` is the median wall time of "
        f"{CHECK_RUNS_PER_SIZE} runs, each a new process.",
        "",
        f"Cold `check --quiet` on the demo host (3 sessions): median {c['median_ms']:.0f} ms "
        f"(min {c['min_ms']:.0f}, max {c['max_ms']:.0f}) over {c['runs']} runs.",
    ]
    ph = next((r["prometheus_headers"] for r in results["sizes"] if "prometheus_headers" in r),
              None)
    if ph:
        lines.append(
            f"With Prometheus' own request headers (OpenMetrics, gzip) at {TARGET_SIZE} sessions: "
            f"agent p50 {ph['agent']['p50_ms']:.2f} ms, p99 {ph['agent']['p99_ms']:.2f} ms; "
            f"node_exporter p50 {ph['node_exporter']['p50_ms']:.2f} ms, "
            f"p99 {ph['node_exporter']['p99_ms']:.2f} ms; ratio {ph['ratio_p50']:.3f}.")
    lines += ["", "| target | measured | |", "|---|---:|---|"]
    for what, value, ok in results["targets"]:
        lines.append(f"| {what} | {value} | {'met' if ok else '**not met**'} |")
    return "\n".join(lines)


def main() -> int:
    node_bin = node_exporter_path()
    procs = Processes()
    # SIGTERM/SIGHUP become SystemExit so the finally below still kills our servers.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    work = Path(tempfile.mkdtemp(prefix="obsdvpn-bench."))
    started = time.monotonic()
    try:
        results: dict = {"machine": machine(), "sizes": []}
        demo_default = work / "demo-default.json"
        reset_demo(demo_default, None)
        results["check_quiet_demo_default"] = cold_checks(demo_default, CHECK_RUNS)
        for n in SIZES:
            print(f"bench: {n} sessions ...", file=sys.stderr, flush=True)
            results["sizes"].append(bench_size(n, work, procs, node_bin))
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
    sys.exit(main())
