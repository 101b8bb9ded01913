"""The demo host's whole exposition, byte for byte: tests/fixtures/golden/demo-metrics.prom.

`obsdvpn-agent --demo-state X metrics` after a fixed story: a reset to 5
sessions, pf disabled and repaired (so the repair outcome series exist),
isakmpd crashed (so failing checks are in it too).  Any change of a name,
label, HELP text, order or value shows up as a diff here.

Deterministic by a fixed wall clock: every agent process of this test runs
through FIXED_CLOCK, which sets time.time() to NOW *before* the agent is
imported, so the defaults that bind it at import (the demo host's clock) see
NOW as well.  The demo state, its counters and uptimes, the session start
times, the repair's timestamp and obsdvpn_last_collection_timestamp_seconds are
then the same on every run and machine; TZ=UTC fixes what npppctl prints as
local time.  Only how long each collector took is left to the machine
(time.monotonic(), which the agent's timeouts run on, is not touched), so
normalise() sets every obsdvpn_collector_duration_seconds value to 0.0 in the
output and in the golden file alike.

After a deliberate change of the exposition, regenerate and review the diff:

    OBSDVPN_REGEN_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py
    (or: make golden)

Without OBSDVPN_REGEN_GOLDEN the test only compares, and fails on a difference.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES

GOLDEN = FIXTURES / "golden" / "demo-metrics.prom"
REGENERATE = os.environ.get("OBSDVPN_REGEN_GOLDEN") == "1"
NOW = 1_714_570_000.0  # 2024-05-01 13:26:40 UTC, the samples' day

FIXED_CLOCK = """\
import sys, time
NOW = float(sys.argv.pop(1))
time.time = lambda: NOW
from obsdvpn_agent.cli import main
main()
"""
STORY = (
    (("demo", "reset", "--sessions", "5"), 0),
    (("demo", "break", "pf-disabled"), 0),
    (("repair",), 1),
    (("demo", "crash", "isakmpd"), 0),
)
_DURATION = re.compile(r"^(obsdvpn_collector_duration_seconds\{[^}]*\}) \S+$", re.MULTILINE)


def normalise(exposition: str) -> str:
    """The exposition with the machine-dependent collector durations set to 0.0."""
    return _DURATION.sub(r"\1 0.0", exposition)


def agent(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OBSDVPN_AGENT_CONFIG"}
    env.update(TZ="UTC", HOME=str(tmp), XDG_STATE_HOME=str(tmp / "state"))
    conf = tmp / "agent.conf"          # the defaults, whatever /etc holds
    conf.touch()
    return subprocess.run([sys.executable, "-c", FIXED_CLOCK, repr(NOW), "--config", str(conf),
                           "--demo-state", str(tmp / "demo.json"), *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def demo_exposition(tmp: Path) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    for args, code in STORY:
        p = agent(tmp, *args)
        assert p.returncode == code, (args, p.returncode, p.stderr)
    p = agent(tmp, "metrics")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return normalise(p.stdout)


@pytest.fixture(scope="module")
def exposition(tmp_path_factory) -> str:
    """One demo exposition for the golden comparison and the determinism test."""
    return demo_exposition(tmp_path_factory.mktemp("golden"))


def test_demo_exposition_matches_the_golden_file(exposition):
    got = exposition
    if REGENERATE:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(got)
    assert GOLDEN.exists(), f"no {GOLDEN}: run with OBSDVPN_REGEN_GOLDEN=1 to write it"
    want = GOLDEN.read_text()
    diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                        str(GOLDEN.relative_to(FIXTURES.parent.parent)),
                                        "obsdvpn-agent metrics", n=1))
    assert got == want, (f"the demo exposition changed; if on purpose, regenerate with "
                         f"OBSDVPN_REGEN_GOLDEN=1 (make golden) and review:\n{diff}")


def test_the_exposition_is_deterministic(tmp_path, exposition):
    # Two runs from scratch give the same bytes: nothing but the normalised durations
    # depends on the machine or the moment.
    first = exposition
    assert demo_exposition(tmp_path / "two") == first
    assert "obsdvpn_last_collection_timestamp_seconds 1.71457e+09\n" in first


def test_normalise_touches_only_collector_durations():
    text = ('obsdvpn_collector_duration_seconds{collector="pf"} 0.0123\n'
            'obsdvpn_collector_success{collector="pf"} 1.0\n'
            "obsdvpn_last_collection_timestamp_seconds 1.71457e+09\n")
    assert normalise(text) == text.replace("0.0123", "0.0")
