"""Metrics: names and values from facts, the README catalogue, the textfile."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, run_cli, sample_snapshot_document, with_fact
from obsdvpn_agent.checks import evaluate
from obsdvpn_agent.config import Config
from obsdvpn_agent.host.snapshot import SnapshotHost
from obsdvpn_agent.metrics import render
from obsdvpn_agent.probes import ProbeFailure, gather
from obsdvpn_agent.repair import Pause

REPAIR = {"time": 1700000300.0, "exit_code": 0, "actions": {"applied": 0, "failed": 0},
          "last_change": {"time": 1700000000.0, "exit_code": 1,
                          "actions": {"applied": 2, "failed": 0}}}
PAUSE = Pause(1700000000.0, 1700007200.0, "maintenance")


@pytest.fixture
def facts(tmp_path):
    (tmp_path / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    return gather(SnapshotHost(str(tmp_path)), Config())


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def exposed_names(text: str) -> set[str]:
    return {fam.name + ("_total" if fam.type == "counter" else "")
            for fam in text_string_to_metric_families(text)}


def readme_names() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- metrics-table -->")[1].split("<!-- /metrics-table -->")[0]
    return re.findall(r"^\| `(obsdvpn_[a-z0-9_]+)` \|", table, re.MULTILINE)


def test_readme_catalogue_matches_the_exposition(facts):
    text = render(facts, evaluate(facts, Config()), Config(), REPAIR, PAUSE).decode()
    names = readme_names()
    assert len(names) == len(set(names))
    assert set(names) == exposed_names(text)


def test_values_from_the_sample_host(facts):
    s = samples(render(facts, evaluate(facts, Config()), Config()).decode())
    assert s[("obsdvpn_check_status", (("check", "ipsec.sessions_sa"),))] == 2
    assert s[("obsdvpn_status", ())] == 2
    assert s[("obsdvpn_ppp_sessions", ())] == 2
    assert s[("obsdvpn_ipsec_sas", ())] == 0 and s[("obsdvpn_ipsec_flows", ())] == 2
    alice = (("interface", "pppx0"), ("user", "alice"))
    assert s[("obsdvpn_ppp_session_receive_bytes_total", alice)] == 123456
    assert s[("obsdvpn_ppp_session_transmit_bytes_total", alice)] == 987654
    assert s[("obsdvpn_ppp_session_start_time_seconds", alice)] == round(
        facts.collected_at - 3725)
    assert s[("obsdvpn_pf_states", ())] == 37 and s[("obsdvpn_pf_state_limit", ())] == 100000
    assert s[("obsdvpn_pf_state_searches_total", ())] == 1234567
    assert s[("obsdvpn_sysctl_persisted", (("name", "net.pipex.enable"),))] == 1
    assert s[("obsdvpn_daemon_flags_ok", (("daemon", "isakmpd"),))] == 1
    assert s[("obsdvpn_file_mode", (("path", "/etc/ipsec.conf"),))] == 0o600
    assert s[("obsdvpn_collector_success", (("collector", "pf"),))] == 1
    info = [k for k in s if k[0] == "obsdvpn_ppp_session_info"]
    assert dict(info[0][1]) == {"interface": "pppx0", "user": "alice", "tunnel": "L2TP",
                                "address": "10.0.0.2", "peer": "203.0.113.10"}


def test_failed_probe_drops_its_metrics_and_marks_its_collector(facts):
    denied = ProbeFailure("/sbin/pfctl -si", "permission", "permission denied")
    runs = tuple(dataclasses.replace(r, success=False) if r.name == "pf" else r
                 for r in facts.collectors)
    facts = dataclasses.replace(with_fact(facts, "pf.info", denied), collectors=runs)
    s = samples(render(facts, evaluate(facts, Config()), Config()).decode())
    assert ("obsdvpn_pf_enabled", ()) not in s  # never a fake "disabled"
    assert s[("obsdvpn_collector_success", (("collector", "pf"),))] == 0
    assert s[("obsdvpn_check_status", (("check", "pf.enabled"),))] == 3


def test_no_unbounded_labels(facts):
    text = render(facts, evaluate(facts, Config()), Config(), REPAIR).decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            assert not {"spi", "ppp_id", "port", "rule", "time"} & set(s.labels), s


def test_check_textfile_writes_the_exposition(tmp_path, facts):
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    out = tmp_path / "obsdvpn.prom"
    p = run_cli("--snapshot", str(snap), "check", "--quiet", "--textfile", str(out))
    assert p.returncode == 2
    text = out.read_text()
    assert 'obsdvpn_check_status{check="ipsec.sessions_sa"} 2.0' in text
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp file left
