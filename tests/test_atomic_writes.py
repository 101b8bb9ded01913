"""Everything the agent writes is replaced atomically; a crash leaves the old file whole.

The writers: the node_exporter textfile (host.agentfiles.write_textfile, `check
--textfile`), files on the host (host.local.write_atomically, behind
LocalHost.write_file: sysctl.conf in repair, snapshot.json, the last-repair
outcome) and the demo host's state file (StateStore).  For each:

- a failure at every step (write, fsync, chmod, rename) raises, leaves the
  old file byte for byte and removes the temp file;
- a reader polling the file while it is rewritten only ever sees a whole
  old or a whole new version;
- a writer process killed with SIGKILL at many points leaves the target a
  whole version; a leftover temp file is never the target and never looks
  like one to its reader (node_exporter reads only *.prom).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import sample_snapshot_document
from obsdvpn_agent import metrics
from obsdvpn_agent.checks import Action, evaluate
from obsdvpn_agent.config import Config
from obsdvpn_agent.host import local
from obsdvpn_agent.host.agentfiles import write_textfile
from obsdvpn_agent.host.demo.events import fresh_state
from obsdvpn_agent.host.demo.state import StateStore
from obsdvpn_agent.host.snapshot import SnapshotHost
from obsdvpn_agent.probes import gather
from obsdvpn_agent.repair import Plan, apply

AGENT = Path(__file__).resolve().parents[1] / "agent"
OLD = "net.inet.ip.forwarding=0\t# the old file\n"
NEW = "net.inet.ip.forwarding=1\t# the new file\n"


class Crash(Exception):
    """Stands for the process dying at that point."""


def _boom(*args, **kwargs):
    raise Crash()


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


@pytest.fixture
def facts_results(tmp_path):
    (tmp_path / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    facts = gather(SnapshotHost(str(tmp_path)), Config())
    return facts, evaluate(facts, Config())


class _HalfWriter:
    """A file object that writes half of what it is given, then dies."""

    def __init__(self, real) -> None:
        self._real = real

    def write(self, data):
        self._real.write(data[:len(data) // 2])
        self._real.flush()
        raise Crash()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._real.close()

    def __getattr__(self, name):
        return getattr(self._real, name)


def _half_fdopen(real_fdopen):
    return lambda fd, *a, **k: _HalfWriter(real_fdopen(fd, *a, **k))


# Each step of a write that can fail: (target in module os, replacement maker).
STEPS = {
    "write": ("fdopen", _half_fdopen),
    "fsync": ("fsync", lambda real: _boom),
    "chmod": ("chmod", lambda real: _boom),
    "rename": ("replace", lambda real: _boom),
}


# ---------------------------------------------------------------------------
# The textfile


@pytest.mark.parametrize("step", STEPS)
def test_textfile_crash_keeps_the_old_file(tmp_path, monkeypatch, facts_results, step):
    out = tmp_path / "prom"
    out.mkdir()
    target = out / "obsdvpn.prom"
    target.write_text("# old exposition\n")
    name, make = STEPS[step]
    monkeypatch.setattr(os, name, make(getattr(os, name)))
    with pytest.raises(Crash):
        write_textfile(str(target), metrics.render(*facts_results, Config()))
    monkeypatch.undo()
    assert target.read_text() == "# old exposition\n"
    assert _leftovers(out, {"obsdvpn.prom"}) == []
    write_textfile(str(target), metrics.render(*facts_results, Config()))   # and it still works
    assert "obsdvpn_check_status" in target.read_text()
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert _leftovers(out, {"obsdvpn.prom"}) == []


def test_textfile_readers_only_see_whole_versions(tmp_path, monkeypatch, facts_results):
    target = tmp_path / "obsdvpn.prom"
    versions = [b"# version A\n" + b"a" * 300_000 + b"\n",
                b"# version B\n" + b"b" * 200_000 + b"\n"]
    target.write_bytes(versions[0])
    which = iter(range(10**9))
    monkeypatch.setattr(metrics, "render", lambda *a, **k: versions[next(which) % 2])
    seen, stop = set(), threading.Event()

    def read():
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(60):
            write_textfile(str(target), metrics.render(*facts_results, Config()))
    finally:
        stop.set()
        reader.join()
    assert seen <= set(versions), [len(s) for s in seen - set(versions)]
    assert len(seen) == 2


def test_check_textfile_into_a_missing_directory_is_one_line(tmp_path, sample_snapshot):
    from conftest import run_cli

    p = run_cli("--snapshot", str(sample_snapshot), "check", "--textfile",
                str(tmp_path / "nowhere" / "obsdvpn.prom"))
    # The report still comes, and the worse status wins: the sample host's
    # CRITICAL is not hidden behind an UNKNOWN for the textfile.
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stdout.startswith("OBSDVPN CRITICAL")
    assert "cannot write the textfile" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "nowhere").exists()


# ---------------------------------------------------------------------------
# Files on the host: write_atomically (sysctl.conf in repair, snapshot, repair outcome)


@pytest.mark.parametrize("step", STEPS)
def test_write_atomically_crash_keeps_the_old_file(tmp_path, monkeypatch, step):
    target = tmp_path / "sysctl.conf"
    target.write_text(OLD)
    target.chmod(0o644)
    name, make = STEPS[step]
    monkeypatch.setattr(os, name, make(getattr(os, name)))
    with pytest.raises(Crash):
        local.write_atomically(str(target), NEW, 0o644)
    monkeypatch.undo()
    assert target.read_text() == OLD
    # The backup is made first, from the old file: it holds the old text too.
    assert _leftovers(tmp_path, {"sysctl.conf", "sysctl.conf.obsdvpn-agent.bak"}) == []
    assert (tmp_path / "sysctl.conf.obsdvpn-agent.bak").read_text() == OLD
    backup = local.write_atomically(str(target), NEW, 0o640)
    assert target.read_text() == NEW and backup.endswith(".obsdvpn-agent.bak")
    assert oct(target.stat().st_mode & 0o777) == "0o640"


class _Host(local.LocalHost):
    """LocalHost (its write_file) with /etc moved under a temporary root."""

    def __init__(self, root: Path) -> None:
        self.root, self.label, self._is_root, self._doas_argvs = root, "t", True, frozenset()

    def read_file(self, path):
        return super().read_file(f"{self.root}{path}")

    def stat_file(self, path):
        return super().stat_file(f"{self.root}{path}")

    def write_file(self, path, text, mode):
        return super().write_file(f"{self.root}{path}", text, mode)


def test_repair_sysctl_conf_edit_that_crashes_leaves_the_old_file(tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "sysctl.conf").write_text(OLD)
    action = Action("sysctl.net.inet.ip.forwarding", "persist", "0", "1",
                    path="/etc/sysctl.conf", sysctl=("net.inet.ip.forwarding", "1"))
    monkeypatch.setattr(local.os, "replace", lambda *a: (_ for _ in ()).throw(
        OSError(28, "No space left on device")))
    (outcome,) = apply(Plan((action,)), _Host(tmp_path), 1.0)
    monkeypatch.undo()
    assert outcome.result == "failed" and "No space left on device" in outcome.message
    assert "\n" not in outcome.message
    assert (etc / "sysctl.conf").read_text() == OLD
    assert _leftovers(etc, {"sysctl.conf", "sysctl.conf.obsdvpn-agent.bak"}) == []
    (outcome,) = apply(Plan((action,)), _Host(tmp_path), 1.0)
    assert outcome.result == "applied"
    assert (etc / "sysctl.conf").read_text() == NEW.replace("the new file", "the old file")


# ---------------------------------------------------------------------------
# The demo state


def test_demo_state_change_that_crashes_leaves_the_old_state(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    store = StateStore(path, fresh_state, time.time)
    with store.change() as state:
        state["n"] = 1
    before = path.read_bytes()
    from obsdvpn_agent.host.demo import state as state_module
    for name, make in STEPS.values():
        if name == "chmod":
            continue                              # the state store does not chmod
        monkeypatch.setattr(state_module.os, name, make(getattr(os, name)))
        with pytest.raises(Crash), store.change() as state:
            state["n"] = 2
        monkeypatch.undo()
        assert path.read_bytes() == before, name
        assert _leftovers(tmp_path, {"state.json", "state.json.lock"}) == [], name
    with pytest.raises(Crash), store.change() as state:   # an event that fails half-way
        state["n"] = 3
        raise Crash()
    assert json.loads(path.read_text())["n"] == 1


# ---------------------------------------------------------------------------
# SIGKILL in the middle, many times


WRITERS = {
    "write_atomically": """
        from obsdvpn_agent.host.local import write_atomically
        i = 0
        while True:
            write_atomically(TARGET, VERSIONS[i % 2], 0o644)
            i += 1
    """,
    "textfile": """
        from obsdvpn_agent import metrics
        from obsdvpn_agent.host.agentfiles import write_textfile
        metrics.render = lambda *a, **k: VERSIONS[next(COUNT) % 2].encode()
        while True:
            write_textfile(TARGET, metrics.render(None, (), None))
    """,
    "demo state": """
        import time
        from pathlib import Path
        from obsdvpn_agent.host.demo.events import fresh_state
        from obsdvpn_agent.host.demo.state import StateStore
        store = StateStore(Path(TARGET), fresh_state, time.time)
        i = 0
        while True:
            with store.change() as state:
                state["blob"] = VERSIONS[i % 2]
            i += 1
    """,
}


@pytest.mark.parametrize("writer", WRITERS)
def test_sigkill_in_the_middle_never_leaves_a_half_file(tmp_path, writer):
    target = tmp_path / ("obsdvpn.prom" if writer == "textfile" else "target")
    versions = ["A" * 400_000 + "\n", "B" * 300_000 + "\n"]
    script = (f"import itertools, sys\nsys.path.insert(0, {str(AGENT)!r})\n"
              f"TARGET = {str(target)!r}\nVERSIONS = {versions!r}\n"
              "COUNT = itertools.count()\n" + textwrap.dedent(WRITERS[writer]))
    (tmp_path / "writer.py").write_text(script)
    whole = set(versions) if writer != "demo state" else None
    kills, orphans = 0, set()
    for k in range(12):
        proc = subprocess.Popen([sys.executable, str(tmp_path / "writer.py")],
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not target.exists():               # let it write at least once
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.02 + 0.013 * k)             # a different point of the loop each time
        assert proc.poll() is None, proc.stderr.read()   # killed while still writing
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        kills += 1
        if whole is not None:
            assert target.read_text() in whole, f"half a file after kill {k}"
        else:
            assert json.loads(target.read_text())["blob"] in versions, f"kill {k}"
        for name in _leftovers(tmp_path, {target.name, "writer.py", "target.lock",
                                          "target.obsdvpn-agent.bak"}):
            # A temp file left by the kill: hidden, never the target, never *.prom.
            assert name.startswith("."), name
            assert not name.endswith(".prom"), name
            orphans.add(name)
    assert kills == 12
    KILLS[writer] = (kills, len(orphans))


KILLS: dict[str, tuple[int, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def report_kills(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and KILLS:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for writer, (kills, orphans) in KILLS.items():
                reporter.write_line(f"atomic: {writer}: {kills} SIGKILLs, target whole each "
                                    f"time; {orphans} caught mid-write (temp file left)")
