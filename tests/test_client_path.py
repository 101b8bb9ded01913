"""Healthy means a client can connect: each pf.conf of issue 11 loaded on the demo host
with `pfctl -f`, then judged by `check` end to end (probes, parsers, path engine).

Every broken case is CRITICAL naming the packet class pf blocks and the rule that
decided it; every healthy variant is OK; repair never loads a pf.conf that would
block a client, and loads the good one back over a broken ruleset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import run_cli
from obsdvpn_agent.checks import Status, by_id, evaluate
from obsdvpn_agent.config import Config
from obsdvpn_agent.host.demo.events import fresh_state
from obsdvpn_agent.host.demo.host import DemoHost
from obsdvpn_agent.host.demo.state import StateStore
from obsdvpn_agent.probes import gather
from test_pfpath import CASES, PATH

CHECK_OF = {"ike": "pf.path.ike", "nat-t": "pf.path.nat_t", "esp": "pf.path.esp",
            "l2tp": "pf.path.l2tp", "ppp-in": "pf.path.ppp_in", "nat-out": "pf.path.nat_out"}


def _host(tmp_path: Path) -> DemoHost:
    StateStore(tmp_path / "state.json", fresh_state, time.time).read()
    return DemoHost(tmp_path / "state.json")


def _load(host: DemoHost, name: str) -> None:
    host.write_file("/etc/pf.conf", (PATH / f"{name}.pf.conf").read_text(), 0o600)
    r = host.run(("/sbin/pfctl", "-f", "/etc/pf.conf"), 5)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_pf_conf_is_judged_by_the_client_path(tmp_path, name):
    host = _host(tmp_path)
    _load(host, name)
    results = by_id(evaluate(gather(host, Config()), Config()))
    for packet, decision in CASES[name].items():
        r = results[CHECK_OF[packet]]
        want = Status.OK if decision == "pass" else Status.CRITICAL
        assert r.status is want, (name, r.check, r.summary)
        if decision == "block":
            assert "cannot connect" in r.summary and r.values["rule"], r.summary
    assert results["pf.ruleset"].status is Status.OK   # loaded = what pf.conf loads


def test_repair_puts_back_a_pf_conf_that_lets_clients_in(tmp_path):
    state = tmp_path / "state.json"
    assert run_cli("--demo-state", str(state), "demo", "reset").returncode == 0
    host = DemoHost(state)
    # Load a broken ruleset by hand, keep the good pf.conf on disk.
    saved = host.read_file("/etc/pf.conf")
    _load(host, "broken-block-in-all")
    host.write_file("/etc/pf.conf", saved, 0o600)
    p = run_cli("--demo-state", str(state), "check", "--json")
    checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
    assert p.returncode == 2 and checks["pf.path.ike"]["status"] == "CRITICAL"
    r = run_cli("--demo-state", str(state), "repair")
    assert r.returncode == 1, r.stdout + r.stderr
    assert run_cli("--demo-state", str(state), "check").returncode == 0


def test_repair_will_not_load_a_pf_conf_that_blocks_clients(tmp_path):
    state = tmp_path / "state.json"
    assert run_cli("--demo-state", str(state), "demo", "reset").returncode == 0
    host = DemoHost(state)
    _load(host, "broken-no-nat-t")                 # loaded and on disk: both broken
    r = run_cli("--demo-state", str(state), "repair")
    assert r.returncode == 0, r.stdout
    assert "pf.path.nat_t: /etc/pf.conf itself does not pass pf.path.nat_t" in r.stdout
