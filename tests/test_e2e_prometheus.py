"""End to end with a real Prometheus: two demo agents scraped, every dashboard
query answered, and a fault in one host raising the matching alerts through
Prometheus' API, which resolve once the host is repaired.

Prometheus is Debian's `prometheus` package (`make test` installs it); it runs
on loopback only, with a temporary config and storage, and is stopped with the
agents whatever happens.  Scrape and rule evaluation run every second.

Speed-up, on purpose: Prometheus loads a COPY of dashboards/obsdvpn-alerts.yml
in which every non-zero `for:` is rewritten to FAST_FOR, so an alert fires a
few seconds after its fault instead of minutes.  The expressions, labels and
annotations are the shipped ones; the `for:` durations themselves are proven
by the promtool unit tests (tests/rules/, tests/test_rules.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import SERVING, free_port
from test_dashboard import dashboard_queries, load_dashboard, overview_panel, panels, substitute

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "dashboards" / "obsdvpn-alerts.yml"
FAST_FOR = "2s"
DEADLINE_S = 45  # for each wait; the whole module takes ~20 s when all is well


def agent_argv() -> list[str]:
    """The installed console script beside this interpreter (<venv>/bin), or -m."""
    script = Path(sys.executable).parent / "obsdvpn-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "obsdvpn_agent"]


def agent(*args: str, check_rc: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    r = subprocess.run([*agent_argv(), *args], check=False, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode in check_rc, f"obsdvpn-agent {' '.join(args)}: rc {r.returncode}\n" \
                                     f"{r.stdout}{r.stderr}"
    return r


def http_get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_for(what: str, probe, deadline_s: float = DEADLINE_S, logs: tuple[Path, ...] = ()):
    """Call probe() until it returns something truthy; fail naming `what` after the deadline."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            last = probe()
        except (OSError, ValueError) as e:  # not listening yet, half-written JSON ...
            last = e
        else:
            if last:
                return last
        time.sleep(0.25)
    tails = "\n".join(f"--- {p.name}:\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out after {deadline_s}s waiting for {what}; last: {last!r}\n{tails}")


def fast_rules(text: str) -> str:
    """The rule file with each non-zero `for:` shortened to FAST_FOR (see the docstring)."""
    out, n = re.subn(r"^(\s*for:\s*)(?!0[smh]?\s*$)\S+\s*$", rf"\g<1>{FAST_FOR}", text,
                     flags=re.MULTILINE)
    assert n >= 15, f"only {n} for: lines rewritten"
    return out


def test_fast_rules_rewrite_only_the_durations() -> None:
    text = RULES.read_text()
    fast = fast_rules(text)
    assert "for: 15m" in text and "for: 15m" not in fast
    assert "for: 0m" in fast  # an immediate alert stays immediate

    def strip(rules: str) -> str:
        return re.sub(r"^\s*for:.*$", "", rules, flags=re.MULTILINE)

    assert strip(fast) == strip(text)


class Procs:
    """Processes of one test module, each in its own process group, with a log."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as f:
            # own process group: nothing is left behind if the process forks
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def agents(self, states: dict[str, Path]) -> dict[str, str]:
        """`serve --listen 127.0.0.1:0` for each demo host: host -> the address it bound."""
        logs = {host: self.tmp / f"agent-{host}.log" for host in states}
        for host, state in states.items():
            self.spawn(f"agent-{host}", [*agent_argv(), "--demo-state", str(state), "serve",
                                         "--listen", "127.0.0.1:0", "--interval", "1"])
        instance = {}
        for host, log in logs.items():
            # serve logs `serving ... on http://127.0.0.1:PORT/metrics` once it listens.
            port = wait_for(f"agent {host} to report its port",
                            lambda log=log: SERVING.search(log.read_text()), 20,
                            tuple(self.logs))
            instance[host] = f"{port.group(1)}:{port.group(2)}"
        return instance

    def on_free_port(self, name: str, argv: Callable[[int], list[str]],
                     ready: Callable[[str], bool]) -> str:
        """Start a server that cannot take port 0: pick a free port (bind, release),
        and if another process took it meanwhile, try again with a new one."""
        for attempt in range(3):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            p = self.spawn(f"{name}-{attempt}", argv(port))
            end = time.monotonic() + 30
            while time.monotonic() < end and p.poll() is None:
                try:
                    if ready(url):
                        return url
                except OSError:
                    pass
                time.sleep(0.2)
            log = self.logs[-1].read_text()
            if p.poll() is not None and "address already in use" in log:
                continue
            pytest.fail(f"{name} did not start:\n{log[-3000:]}")
        pytest.fail(f"{name}: no free port after 3 attempts")

    def prometheus(self, rules: str, job: str, targets: list[str],
                   alertmanager: str | None = None) -> str:
        """Debian's Prometheus scraping TARGETS as JOB every second, evaluating the
        rule file text RULES, alerting to ALERTMANAGER if given: its URL."""
        prometheus = shutil.which("prometheus")
        assert prometheus, "prometheus not found: install Debian's prometheus package " \
                           "(`make deps`)"
        rule_file = self.tmp / "obsdvpn-alerts.yml"
        rule_file.write_text(rules)
        doc: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        if alertmanager:
            doc["alerting"] = {"alertmanagers": [{"api_version": "v2", "static_configs": [
                {"targets": [alertmanager.removeprefix("http://")]}]}]}
        config = self.tmp / "prometheus.yml"
        config.write_text(json.dumps(doc, indent=2))  # JSON is YAML: no YAML library needed
        return self.on_free_port("prometheus", lambda port: [
            prometheus, f"--config.file={config}", f"--storage.tsdb.path={self.tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            lambda url: http_get(f"{url}/-/ready") != b"")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait(5)


class Stack:
    """Two demo agents (hosts a and b) and Prometheus scraping them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs = Procs(tmp)
        self.state = {h: tmp / f"{h}.json" for h in ("a", "b")}
        self.instance: dict[str, str] = {}
        self.prom = ""

    @property
    def logs(self) -> list[Path]:
        return self.procs.logs

    def start(self) -> None:
        self.instance = self.procs.agents(self.state)
        for host in self.state:
            wait_for(f"agent {host} to serve /metrics", lambda h=host: b"obsdvpn_build_info" in
                     http_get(f"http://{self.instance[h]}/metrics"), 20, tuple(self.logs))
        self.prom = self.procs.prometheus(fast_rules(RULES.read_text()), "obsdvpn",
                                          [self.instance["a"], self.instance["b"]])

        def both_up():
            targets = self.api("targets")["activeTargets"]
            return len(targets) == 2 and all(t["health"] == "up" for t in targets)
        wait_for("both agents to be scraped and up", both_up, logs=tuple(self.logs))

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        doc = json.loads(http_get(f"{self.prom}/api/v1/{path}{query}"))
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, promql: str) -> list[dict]:
        return self.api("query", query=promql)["result"]

    def alerts(self, state: str = "firing") -> list[dict[str, str]]:
        return [a["labels"] for a in self.api("alerts")["alerts"] if a["state"] == state]

    def stop(self) -> None:
        self.procs.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("e2e"))
    # Host b has been repaired once (pf was disabled), so the obsdvpn_repair_*
    # series exist from the start, and is healthy again.
    b = ("--demo-state", str(s.state["b"]))
    agent(*b, "demo", "break", "pf-disabled")
    agent(*b, "repair", check_rc=(1,))
    agent(*b, "check")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = dashboard_queries(load_dashboard())
    assert len(queries) >= 20

    def empty():
        return [f"{where}: {substitute(expr)}" for where, expr in queries
                if not stack.query(substitute(expr))]
    # rate() needs two scrapes in its window: allow a few seconds for that
    wait_for("every dashboard query to return data", lambda: not empty(), 20)
    assert not empty()
    # the overview table has one line per host: each of its queries one series per host
    overview = overview_panel(load_dashboard())
    for t in overview["targets"]:
        rows = stack.query(substitute(t["expr"]))
        assert sorted(r["metric"]["instance"] for r in rows) == sorted(stack.instance.values())
    # and the sessions table's "since" is each session's start, in milliseconds
    since = [t["expr"] for p in panels(load_dashboard()) if p["type"] == "table"
             for t in p["targets"] if t["expr"].endswith("* 1000")]
    assert since and all(1e12 < float(r["value"][1]) < time.time() * 1000
                         for r in stack.query(substitute(since[0])))
    # the instance variable offers both hosts: the fleet view sees them all
    [selector] = [expr for where, expr in queries if where == "variable instance"]
    instances = {r["metric"]["instance"] for r in stack.query(selector)}
    assert instances == set(stack.instance.values())


def test_fault_in_one_host_fires_its_alerts_and_they_resolve_after_repair(stack: Stack) -> None:
    a, b = stack.instance["a"], stack.instance["b"]
    a_state = ("--demo-state", str(stack.state["a"]))

    def ours(labels: dict[str, str], instance: str) -> bool:
        return labels.get("instance") == instance and labels["alertname"] in (
            "ObsdvpnDaemonDown", "ObsdvpnSysctlDrift")

    # healthy to begin with: the rules have evaluated both hosts' series
    wait_for("the rules to see both hosts",
             lambda: len(stack.query("obsdvpn_daemon_running")) == 4, logs=tuple(stack.logs))
    assert not [x for x in stack.alerts("firing") + stack.alerts("pending")
                if ours(x, a) or ours(x, b)]

    # reboot first: it starts the enabled daemons, which would undo the crash
    agent(*a_state, "demo", "break", "reboot-drift")
    agent(*a_state, "demo", "crash", "isakmpd")
    t0 = time.monotonic()

    def fired():
        firing = stack.alerts()
        down = [x for x in firing if x["alertname"] == "ObsdvpnDaemonDown"
                and x["instance"] == a and x["daemon"] == "isakmpd"]
        drift = [x for x in firing if x["alertname"] == "ObsdvpnSysctlDrift"
                 and x["instance"] == a and x["name"] == "net.inet.ip.forwarding"]
        return firing if down and drift else None
    firing = wait_for("ObsdvpnDaemonDown and ObsdvpnSysctlDrift on host a", fired,
                      logs=tuple(stack.logs))
    fire_s = time.monotonic() - t0
    for x in firing:
        assert x["job"] == "obsdvpn" and x["severity"] in ("critical", "warning"), x
    assert {x["daemon"] for x in firing if x["alertname"] == "ObsdvpnDaemonDown"} == {"isakmpd"}
    # the shipped for: (1m, 2m) shortened to FAST_FOR: firing before that is a bug
    assert fire_s >= 2, f"fired after {fire_s:.1f}s, before the for: {FAST_FOR}"
    # host b is healthy: nothing about it, pending or firing
    assert not [x for x in stack.alerts("firing") + stack.alerts("pending")
                if x.get("instance") == b]

    agent(*a_state, "repair", check_rc=(1,))
    agent(*a_state, "check")
    wait_for("host a's alerts to resolve after the repair",
             lambda: not [x for x in stack.alerts("firing") + stack.alerts("pending")
                          if ours(x, a)], logs=tuple(stack.logs))
    # the repair is visible too: host a now reports it fixed things
    wait_for("host a's last repair exit code", lambda: [
        r for r in stack.query(f'obsdvpn_repair_last_exit_code{{instance="{a}"}}')
        if r["value"][1] == "1"])
