"""The demo host decodes its state file once per collection, and no reader changes it.

StateStore.read() hands every caller the same decoded state until the file
changes, so these tests hold it to that: one decoding per collection, a new
one after each change (by change(), by `demo reset`, by a hand edit), and a
whole collection (gather, checks, metrics, a snapshot's reads), as root and
not, on a healthy host and on every broken one, leaves the shared state as it
found it.
"""

from __future__ import annotations

import copy
import json
import os
import threading

import pytest

from obsdvpn_agent.checks import evaluate
from obsdvpn_agent.config import load
from obsdvpn_agent.host.demo import DemoHost, events
from obsdvpn_agent.host.demo.state import StateStore
from obsdvpn_agent.host.snapshot import RecordingHost
from obsdvpn_agent.metrics import render
from obsdvpn_agent.probes import gather

NOW = 1_700_000_000.0


@pytest.fixture
def decodings(monkeypatch):
    """How many times a state file was decoded."""
    count = {"n": 0}
    real = StateStore._load

    def counting(self):
        count["n"] += 1
        return real(self)
    monkeypatch.setattr(StateStore, "_load", counting)
    return count


def _host(tmp_path, sessions=40, scenario=None, as_root=True):
    host = DemoHost(tmp_path / "state.json", as_root=as_root, clock=lambda: NOW)
    state = events.reset(NOW, sessions)
    if scenario:
        events.break_host(state, scenario, NOW)
    host.store.replace(state)
    return host


def test_one_decoding_per_collection(tmp_path, decodings):
    host = _host(tmp_path)
    facts = gather(host, load(None))
    assert len(facts.npppctl.sessions) == 40
    assert decodings["n"] == 1
    gather(host, load(None))
    assert decodings["n"] == 1          # the file has not changed since


def test_collector_threads_wait_for_one_decoding(tmp_path, decodings):
    host = _host(tmp_path, sessions=400)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(host.store.read()))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert decodings["n"] == 1
    assert all(state is seen[0] for state in seen)


def test_every_change_is_seen(tmp_path, decodings):
    host = _host(tmp_path)
    first = host.store.read()
    with host.store.change() as state:
        assert state is not first       # writers change a copy of their own
        state["hostname"] = "changed.example.org"
    assert first["hostname"] != "changed.example.org"
    assert host.store.read()["hostname"] == "changed.example.org"
    host.store.replace(events.reset(NOW, 2))
    assert len(host.store.read()["sessions"]) == 2
    # A hand edit in place (same inode): the size or mtime changes.
    text = json.loads(host.state_path.read_text())
    text["hostname"] = "edited-by-hand.example.org"
    with open(host.state_path, "r+", encoding="utf-8") as f:
        f.write(json.dumps(text))
        f.truncate()
    assert host.store.read()["hostname"] == "edited-by-hand.example.org"
    assert decodings["n"] == 5


def test_a_vanished_file_is_created_again(tmp_path):
    host = _host(tmp_path)
    host.store.read()
    os.unlink(host.state_path)
    assert len(host.store.read()["sessions"]) == 3   # fresh_state()'s healthy host


@pytest.mark.parametrize("as_root", [True, False])
@pytest.mark.parametrize("scenario", [None, *events.SCENARIOS])
def test_no_reader_changes_the_shared_state(tmp_path, scenario, as_root):
    host = _host(tmp_path, sessions=12, scenario=scenario, as_root=as_root)
    shared = host.store.read()
    before = copy.deepcopy(shared)
    cfg = load(None)
    recorder = RecordingHost(host)          # what `obsdvpn-agent snapshot` reads
    recorder.info()
    facts = gather(recorder, cfg)
    results = evaluate(facts, cfg)
    render(facts, results, cfg)
    render(facts, results, cfg, None, openmetrics=True)
    assert host.store.read() is shared
    assert shared == before
