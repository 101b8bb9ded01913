"""Following /var/log/daemon: new lines only, newsyslog rotation, truncation, restarts,
bounded memory, and the counters kept with the position (probes.collect_log_counts)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from obsdvpn_agent.host import logfile
from obsdvpn_agent.probes import collect_log_counts

FIXTURE = (Path(__file__).parent / "fixtures" / "logs" / "daemon-interleaved.log").read_text()
LINES = FIXTURE.splitlines(keepends=True)


def read_all(path: str, pos, **kw):
    r = logfile.read_new_lines(path, pos, **kw)
    return list(r.lines), r.position, r


def test_reads_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_text("a\nb\npartial")
    lines, pos, _ = read_all(str(log), None)
    assert lines == ["a", "b"] and pos.offset == 4
    with open(log, "a") as f:
        f.write(" line\nc\n")
    lines, pos, _ = read_all(str(log), pos)
    assert lines == ["partial line", "c"]
    lines, pos2, _ = read_all(str(log), pos)
    assert lines == [] and pos2 == pos


def test_rotation_finishes_the_old_file_then_reads_the_new(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_text("1\n2\n")
    _, pos, _ = read_all(str(log), None)
    with open(log, "a") as f:
        f.write("3\n")               # written after our read, before the rotation
    os.rename(log, tmp_path / "daemon.0")   # newsyslog
    log.write_text("4\n5\n")
    lines, pos, r = read_all(str(log), pos)
    assert lines == ["3", "4", "5"]
    assert any("rotated" in n for n in r.notes)
    assert (pos.dev, pos.ino) == (os.stat(log).st_dev, os.stat(log).st_ino)


def test_rotation_into_a_compressed_file_is_followed(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_text("Nov 28 1\nNov 28 2\n")
    _, pos, _ = read_all(str(log), None)
    with open(log, "a") as f:
        f.write("Nov 28 3\n")
    with open(log, "rb") as src, gzip.open(tmp_path / "daemon.0.gz", "wb") as dst:
        dst.write(src.read())             # newsyslog with Z: daemon.0.gz at once
    log.unlink()
    log.write_text("Nov 29 4\n")
    lines, _, r = read_all(str(log), pos)
    assert lines == ["Nov 28 3", "Nov 29 4"] and any("rotated" in n for n in r.notes)


def test_rotation_with_the_old_file_gone_says_lines_are_lost(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_text("1\n")
    _, pos, _ = read_all(str(log), None)
    os.rename(log, tmp_path / "daemon.0")
    log.write_text("2\n")
    os.unlink(tmp_path / "daemon.0")
    lines, _, r = read_all(str(log), pos)
    assert lines == ["2"] and any("lost" in n for n in r.notes)


def test_a_new_file_with_a_reused_inode_number_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_text("Nov 28 09:00:00 old first line\n")
    _, pos, _ = read_all(str(log), None)
    log.unlink()
    log.write_text("Nov 29 09:00:00 new file, longer than the old one was\n")
    if os.stat(log).st_ino == pos.ino:   # the same number again: only the head tells
        assert os.stat(log).st_size >= pos.offset
    lines, _, _ = read_all(str(log), pos)
    assert lines == ["Nov 29 09:00:00 new file, longer than the old one was"]


def test_truncation_restarts_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_text("1\n2\n3\n")
    _, pos, _ = read_all(str(log), None)
    with open(log, "w") as f:        # same inode, shorter
        f.write("x\n")
    lines, _, r = read_all(str(log), pos)
    assert lines == ["x"] and any("truncated" in n for n in r.notes)


def test_bounded_lines_per_call_and_line_length(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_bytes(b"a" * 100 + b"\n" + b"b\n" * 10)
    lines, pos, r = read_all(str(log), None, max_lines=4, max_line_bytes=10)
    assert lines == ["a" * 10, "b", "b", "b"] and r.more
    rest, pos, r = read_all(str(log), pos, max_lines=100, max_line_bytes=10)
    assert rest == ["b"] * 7 and not r.more


def test_an_overlong_line_still_being_written_is_left_for_later(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_bytes(b"x" * 50)
    lines, pos, _ = read_all(str(log), None, max_line_bytes=10)
    assert lines == [] and pos.offset == 0


def test_missing_file(tmp_path: Path) -> None:
    r = logfile.read_new_lines(str(tmp_path / "nope"), None)
    assert r.position is None and r.lines == ()


def test_history_files_and_gzip(tmp_path: Path) -> None:
    log = tmp_path / "daemon"
    log.write_text("new\n")
    (tmp_path / "daemon.0").write_text("zero\n")
    with gzip.open(tmp_path / "daemon.1.gz", "wt") as f:
        f.write("one\n")
    files = logfile.history_files(str(log), 3)
    assert [Path(f).name for f in files] == ["daemon.1.gz", "daemon.0", "daemon"]
    assert [line for f in files for line in logfile.iter_lines(f)] == ["one", "zero", "new"]


def test_new_text_for_hosts_that_give_text() -> None:
    text, pos = logfile.new_text("a\nb\nc", None)
    assert text == "a\nb\n"
    text, pos = logfile.new_text("a\nb\nc\nd\n", pos)
    assert text == "c\nd\n"
    text, pos = logfile.new_text("z\n", pos)     # replaced by a shorter file
    assert text == "z\n"


def test_state_file_round_trip_and_damage(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "state.json")
    logfile.save_state(path, logfile.LogState(logfile.Position(1, 2, 3), {"k": 1}))
    assert logfile.load_state(path) == logfile.LogState(logfile.Position(1, 2, 3), {"k": 1})
    assert os.stat(path).st_mode & 0o777 == 0o600
    Path(path).write_text("{not json")
    assert logfile.load_state(path) == logfile.LogState()


def _collect(log: Path, state: Path):
    counts, ok, _ = collect_log_counts(None, str(log), str(state), ("carol", "erin"))
    assert ok
    return counts


def test_restarts_neither_recount_nor_miss(tmp_path: Path) -> None:
    """Collections over a growing, rotated log give the totals of one read of it all."""
    log, state = tmp_path / "daemon", tmp_path / "state.json"
    whole_log, whole_state = tmp_path / "whole", tmp_path / "whole.json"
    whole_log.write_text(FIXTURE)
    expected = _collect(whole_log, whole_state)
    third = len(LINES) // 3
    log.write_text("".join(LINES[:third]))
    _collect(log, state)
    _collect(log, state)                          # a restart: nothing new, nothing recounted
    with open(log, "a") as f:
        f.write("".join(LINES[third:2 * third]))
    os.rename(log, tmp_path / "daemon.0")         # rotated before the next collection
    log.write_text("".join(LINES[2 * third:]))
    got = _collect(log, state)
    assert got == expected
    assert got.ppp_auth_failures["unknown-user"] == 13


def test_unreadable_log_keeps_the_totals(tmp_path: Path) -> None:
    log, state = tmp_path / "daemon", tmp_path / "state.json"
    log.write_text(FIXTURE)
    first = _collect(log, state)
    log.unlink()
    counts, ok, notes = collect_log_counts(None, str(log), str(state), ("carol",))
    assert not ok and counts == first and notes
