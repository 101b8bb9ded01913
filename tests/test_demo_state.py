"""The demo state file: created healthy, atomic, shared safely between processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from obsdvpn_agent.host.base import HostError
from obsdvpn_agent.host.demo import DemoHost, DemoStateError, default_state_path

AGENT = Path(__file__).resolve().parents[1] / "agent"


def test_default_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "obsdvpn-agent" / "demo-state.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_path() == \
        tmp_path / "home" / ".local" / "state" / "obsdvpn-agent" / "demo-state.json"


def test_missing_file_is_created_healthy(tmp_path):
    path = tmp_path / "sub" / "dir" / "state.json"
    host = DemoHost(path)
    assert host.label == f"demo:{path}"
    info = host.info()
    assert (info.system, info.release, info.is_root) == ("OpenBSD", "7.6", True)
    state = json.loads(path.read_text())
    assert len(state["sessions"]) == 3
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json", "state.json.lock"]


@pytest.mark.parametrize("content,fault", [
    (b"{not json", "invalid JSON at line 1 column 2"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"version": 1}', "missing hostname, boot_time"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_corrupt_file_raises_one_line_naming_it(tmp_path, content, fault):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    host = DemoHost(path)
    with pytest.raises(DemoStateError) as caught:
        host.run(("/sbin/sysctl", "net.pipex.enable"), 5)
    message = str(caught.value)
    assert isinstance(caught.value, HostError)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert fault in message
    with pytest.raises(DemoStateError):
        host.processes()
    assert path.read_bytes() == content  # left as it was, for the user to look at


def test_wrong_version(tmp_path):
    host = DemoHost(tmp_path / "state.json")
    with host.store.change() as state:
        state["version"] = 99
    with pytest.raises(DemoStateError, match="version 99"):
        host.info()


def test_failed_change_leaves_the_file_untouched(tmp_path):
    host = DemoHost(tmp_path / "state.json")
    before = host.store.path.read_bytes() if host.info() else b""
    with pytest.raises(RuntimeError), host.store.change() as state:
        state["sessions"] = []
        raise RuntimeError("boom")
    assert host.store.path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".state.json.")]


WORKER = """
import sys
from pathlib import Path
sys.path.insert(0, {agent!r})
from obsdvpn_agent.host.demo import DemoHost
host = DemoHost(Path({path!r}))
for i in range({n}):
    if i % 2:
        with host.store.change() as state:
            state["npppd"]["next_ppp_id"] += 1
    else:
        # one admin command that changes the state, like a repair would
        result = host.run(("/sbin/sysctl", "kern.hostname=h{tag}%d" % i), 5)
        assert result.returncode == 0, result.stderr
        with host.store.change() as state:
            state["npppd"]["next_ppp_id"] += 1
    host.run(("/sbin/pfctl", "-si"), 5)
"""


def test_two_processes_changing_the_state_lose_no_update(tmp_path):
    path = tmp_path / "state.json"
    start = DemoHost(path).store.read()["npppd"]["next_ppp_id"]
    n = 40
    procs = [subprocess.Popen([sys.executable, "-c", WORKER.format(
        agent=str(AGENT), path=str(path), n=n, tag=tag)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for tag in "ab"]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    state = json.loads(path.read_text())
    assert state["npppd"]["next_ppp_id"] == start + 2 * n
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".state.json.")]


def test_state_is_plain_json_a_person_can_edit(tmp_path):
    path = tmp_path / "state.json"
    host = DemoHost(path)
    host.info()
    state = json.loads(path.read_text())
    state["sysctl"]["net.pipex.enable"] = 0
    path.write_text(json.dumps(state))
    assert host.run(("/sbin/sysctl", "-n", "net.pipex.enable"), 5).stdout == "0\n"
    assert os.stat(path).st_size > 1000
