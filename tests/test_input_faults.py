"""Issue 13: inputs a clumsy admin or an attacker gives the CLI, each refused in one
line (or handled) with nothing on the host changed or lost."""

from __future__ import annotations

import json
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


def test_save_record_in_the_current_directory(tmp_path, monkeypatch):
    from obsdvpn_agent.host.agentfiles import save_record

    monkeypatch.chdir(tmp_path)
    save_record("d.json.last-repair.json", {"exit_code": 0})
    assert json.loads((tmp_path / "d.json.last-repair.json").read_text()) == {"exit_code": 0}


# --- item 2: `check --textfile PATH` replaces only a regular file -----------------------

def _make(kind: str, path: Path) -> None:
    if kind == "symlink":
        target = path.with_name("target.prom")
        target.write_text("kept\n")
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "chardev":
        # Stands for /dev/null: tests run as root, which may mknod.
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    elif kind == "directory":
        path.mkdir()
        (path / "inside").write_text("kept\n")


@pytest.mark.parametrize("kind, said", [("symlink", "a symbolic link"), ("fifo", "a fifo"),
                                        ("chardev", "a character device"),
                                        ("directory", "a directory")])
def test_check_textfile_refuses_what_is_not_a_regular_file(tmp_path, kind, said):
    target = tmp_path / "agent.prom"
    _make(kind, target)
    before = os.lstat(target)
    p = run_cli("--demo-state", str(tmp_path / "d.json"), "check", "--textfile", str(target))
    assert p.returncode == 3, p.stdout
    assert p.stderr == (f"obsdvpn-agent: {target}: cannot write the textfile: {said}, not a "
                        "regular file: left alone\n")
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode,
                                                            before.st_rdev)
    if kind == "symlink":
        assert target.resolve().read_text() == "kept\n"
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".agent.prom")] == []


def test_textfile_in_a_directory_of_another_user_is_refused(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    os.chown(other, 4242, 4242)
    target = other / "agent.prom"
    target.write_text("old\n")
    with pytest.raises(OSError) as e:
        replace_file(str(target), b"new\n", 0o644)
    assert e.value.strerror == (f"its directory {other} belongs to uid 4242, neither this user "
                                "nor root: nothing written")
    assert target.read_text() == "old\n" and sorted(os.listdir(other)) == ["agent.prom"]


def test_textfile_regular_file_or_nothing_is_written(tmp_path):
    target = tmp_path / "agent.prom"
    replace_file(str(target), b"one\n", 0o644)
    replace_file(str(target), b"two\n", 0o644)
    assert target.read_text() == "two\n" and stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.parametrize("interval", ["nan", "inf", "1e308", "-1"])
def test_serve_interval_must_be_a_sane_number(tmp_path, interval):
    # nan passed click's FloatRange and made serve collect without pause.
    p = run_cli("--demo-state", str(tmp_path / "d.json"), "serve", "--listen", "127.0.0.1:0",
                "--interval", interval, timeout=20)
    assert p.returncode == 3 and p.stdout == ""
    assert "Invalid value for '--interval'" in p.stderr and "Traceback" not in p.stderr
