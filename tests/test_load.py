"""`serve` under load, on loopback: 50 concurrent scrapers, slow and idle clients.

- a real `obsdvpn-agent --snapshot DIR serve` process, 50 scraper threads for a
  bounded time and a bounded number of requests: no error, every scraper
  answered, RSS of the serve process flat between start and end, and the
  collections it ran (distinct obsdvpn_last_collection_timestamp_seconds
  values) no more than elapsed/interval + 1;
- in process, a host that counts its run() calls: commands run once per
  collection and collections no more often than the interval, however many
  scrapers;
- idle sockets, a client that sends its request one byte at a time and one
  that reads the answer one byte at a time do not hold up other scrapes.

The figures (scrapes served, p50/p99, RSS start/end) are printed at the end;
how fast is bench/bench.py's business (`load_50_scrapers`, `load_idle_and_slow_clients`),
these tests assert what happens, not how soon.
"""

from __future__ import annotations

import json
import threading
import time

import psutil
import pytest
from bench import idle_and_slow_clients, load  # bench/bench.py: the load generators

from conftest import ServeProcess, sample_snapshot_document
from obsdvpn_agent.commands import probe_commands
from obsdvpn_agent.config import Config
from obsdvpn_agent.host.snapshot import SnapshotHost
from obsdvpn_agent.server import Collector, make_server

SCRAPERS = 50
DURATION_S = 5.0
INTERVAL_S = 1.0
FIGURES: dict[str, str] = {}


@pytest.fixture
def snapshot_dir(tmp_path):
    (tmp_path / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    return tmp_path


@pytest.fixture
def serve_process(snapshot_dir):
    serve = ServeProcess("--snapshot", str(snapshot_dir), "serve", "--listen", "127.0.0.1:0",
                         "--interval", str(INTERVAL_S))
    try:
        serve.wait_ready()
        yield serve.proc, serve.port
    finally:
        serve.stop()


def test_fifty_scrapers_against_a_serve_process(serve_process):
    proc, port = serve_process
    server = psutil.Process(proc.pid)
    load("127.0.0.1", port, 1.0)                 # warm up: threads, buffers, first renders
    rss_start = server.memory_info().rss
    result = load("127.0.0.1", port, DURATION_S)
    rss_end = server.memory_info().rss
    served = len(result["latencies"])
    FIGURES["serve process, scrapes served"] = (
        f"{served} in {result['elapsed']:.1f} s by {SCRAPERS} scrapers "
        f"({served / result['elapsed']:.0f}/s)")
    FIGURES["serve process, latency"] = (f"p50 {result['p50'] * 1000:.1f} ms, "
                                         f"p99 {result['p99'] * 1000:.1f} ms, "
                                         f"max {result['latencies'][-1] * 1000:.1f} ms")
    FIGURES["serve process, RSS"] = (f"start {rss_start / 2**20:.1f} MiB, "
                                     f"end {rss_end / 2**20:.1f} MiB")
    # The window opens on a collection made before it: that one, plus at most
    # elapsed/interval + 1 made during it.
    allowed = 1 + result["elapsed"] / INTERVAL_S + 1
    FIGURES["serve process, collections seen"] = (
        f"{len(result['stamps'])} (at most {allowed:.1f}: the one there at the start plus "
        "elapsed/interval + 1)")
    assert result["errors"] == []
    assert served >= SCRAPERS                    # each of them was answered
    assert abs(rss_end - rss_start) < 10 * 2**20, (rss_start, rss_end)
    assert "missing" not in result["stamps"]
    assert len(result["stamps"]) <= allowed
    assert proc.poll() is None


class CountingHost:
    """A snapshot host that counts the commands run on it."""

    def __init__(self, inner: SnapshotHost) -> None:
        self._inner = inner
        self.label = inner.label
        self.runs = 0
        self._lock = threading.Lock()

    def run(self, argv, timeout_s):
        with self._lock:
            self.runs += 1
        return self._inner.run(argv, timeout_s)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_commands_run_once_per_interval_whatever_the_scrapers(snapshot_dir):
    host = CountingHost(SnapshotHost(str(snapshot_dir)))
    cfg = Config()
    interval = 0.5
    collector = Collector(lambda: host, lambda: cfg, interval)
    server = make_server(collector, "127.0.0.1:0")
    start = time.monotonic()
    loop = threading.Thread(target=collector.loop, daemon=True)
    loop.start()
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        result = load(*server.server_address[:2], 2.5)
    finally:
        elapsed = time.monotonic() - start
        collector.stop()
        server.shutdown()
        server.server_close()
        loop.join(timeout=10)
    per_collection = len(probe_commands(cfg))   # root runs them all, ipsecctl -nvf included
    allowed = elapsed / interval + 1
    FIGURES["in process, collections"] = (
        f"{collector.collections} in {elapsed:.1f} s at {interval} s (at most {allowed:.1f}); "
        f"{host.runs} commands = {per_collection} per collection; "
        f"{len(result['latencies'])} scrapes")
    assert result["errors"] == []
    assert collector.collections <= allowed
    assert host.runs == collector.collections * per_collection


def test_idle_and_slow_clients_do_not_block_others(serve_process):
    proc, port = serve_process
    # 60 silent sockets, a client dribbling its request a byte at a time and one that
    # hardly reads 20 pipelined answers, while 20 scrapes go on: each is answered (a
    # server waiting on any of the others would leave it to its 5 s timeout).
    result = idle_and_slow_clients(port)
    FIGURES["with 60 idle sockets, a dribbler and a slow reader"] = (
        f"20 scrapes, slowest {result['slowest_ms']:.1f} ms")
    assert result["scrapes"] == 20
    assert proc.poll() is None


@pytest.fixture(scope="module", autouse=True)
def report_figures(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and FIGURES:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for what, figure in FIGURES.items():
                reporter.write_line(f"load: {what}: {figure}")
