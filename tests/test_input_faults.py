"""Issue 13: inputs a clumsy admin or an attacker gives the CLI, each refused in one
line (or handled) with nothing on the host changed or lost."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import run_cli

from obsdvpn_agent.host.atomic import replace_file


def test_repair_with_a_relative_demo_state_records_its_outcome(tmp_path, monkeypatch):
    # Item 10: dirname("d.json") is "", and makedirs("") failed.
    monkeypatch.chdir(tmp_path)
    assert run_cli("--demo-state", "d.json", "demo", "crash", "isakmpd").returncode == 0
    p = run_cli("--demo-state", "d.json", "repair")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "cannot record" not in p.stderr
    assert (tmp_path / "d.json.last-repair.json").is_file()


def test_save_repair_state_in_the_current_directory(tmp_path, monkeypatch):
    from obsdvpn_agent.repair_state import save_repair_state

    class App:
        snapshot = None
        demo = True
        demo_state = Path("d.json")

    monkeypatch.chdir(tmp_path)
    save_repair_state(App(), {"exit_code": 0})
    assert (tmp_path / "d.json.last-repair.json").read_text() == '{"exit_code": 0}\n'
