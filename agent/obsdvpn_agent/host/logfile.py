"""Reading a growing syslog file: only the lines added since the last read.

The position is the file's identity (st_dev, st_ino) and a byte offset, kept
with the caller's running totals in one small JSON state file written by
replace_file(), so position and totals change together: a crash before the
write rereads the same lines next time, never counts them twice or skips them.

newsyslog(8) rotates /var/log/daemon by renaming it to daemon.0 (daemon.0.gz
with the Z flag) and creating a new daemon.  When
the file at the path is not the one the position names, read_new_lines()
finishes the renamed file (found by its identity among PATH.0, PATH.1) from
the kept offset, then reads the new file from its start.  A file that
shrank below the offset was truncated: it is read again from its start.

Memory stays bounded: lines are streamed, a line longer than max_line_bytes is
cut (and counted as what it is by the parser: an unknown line), and one call
returns at most max_lines lines; the rest come with the next call.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, cast

from .agentfiles import load_record, save_record
from .flock import locked

MAX_LINE_BYTES = 8192      # longer lines are cut (and then read as unknown lines)
MAX_LINES = 100_000
STATE_VERSION = 1


@dataclass(frozen=True)
class Position:
    dev: int
    ino: int
    offset: int
    # sha256 of the file's first line: a new file may get a deleted one's inode number.
    head: str = ""


@dataclass(frozen=True)
class ReadResult:
    lines: tuple[str, ...]
    position: Position | None      # None: the file does not exist (yet)
    notes: tuple[str, ...] = ()    # rotation followed, truncation, lines lost, more to read
    more: bool = False             # max_lines reached: call again


@dataclass(frozen=True)
class LogState:
    """What the state file keeps: where reading stopped and the caller's totals."""

    position: Position | None = None
    totals: dict[str, object] = field(default_factory=dict)


def _decode(raw: bytes, max_line_bytes: int) -> str:
    if len(raw) > max_line_bytes:
        raw = raw[:max_line_bytes]
    return raw.rstrip(b"\n").decode("utf-8", "replace")


def _head(f: IO[bytes]) -> str:
    f.seek(0)
    first = f.readline(4096)
    return hashlib.sha256(first).hexdigest() if first.endswith(b"\n") else ""


def _same(f: IO[bytes], position: Position) -> bool:
    st = os.fstat(f.fileno())
    if (st.st_dev, st.st_ino) != (position.dev, position.ino):
        return False
    return not position.head or _head(f) == position.head


def _read_from(f: IO[bytes], offset: int, budget: int, max_line_bytes: int,
               out: list[str]) -> int:
    """Append complete lines from offset; returns the offset after the last one read.

    A last line without its newline is being written: it is left for next time.
    """
    f.seek(offset)
    pos = offset
    while len(out) < budget:
        raw = f.readline(max_line_bytes + 1)
        if not raw:
            break
        consumed = len(raw)
        if not raw.endswith(b"\n"):
            if len(raw) <= max_line_bytes:
                break         # the last line is still being written
            complete = False  # overlong: keep its head, skip to its end
            while chunk := f.readline(65536):
                consumed += len(chunk)
                if chunk.endswith(b"\n"):
                    complete = True
                    break
            if not complete:
                break
        pos += consumed
        out.append(_decode(raw, max_line_bytes))
    return pos


def read_new_lines(path: str, position: Position | None, max_lines: int = MAX_LINES,
                   max_line_bytes: int = MAX_LINE_BYTES) -> ReadResult:
    """The complete lines added to path since position (all of it if position is None)."""
    lines: list[str] = []
    notes: list[str] = []
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return ReadResult((), None, (f"{path}: no such file",))
    with f:
        st = os.fstat(f.fileno())
        offset = 0
        if position is not None:
            same_file = _same(f, position)
            if same_file and st.st_size >= position.offset:
                offset = position.offset
            elif same_file:
                notes.append(f"{path} was truncated: reading it again from the start")
            else:
                old = _rotated(path, position)
                if old is None:
                    notes.append(f"{path} was truncated or replaced, and no rotated file "
                                 "holds the rest of the old one: lines after the last read "
                                 "are lost")
                else:
                    with old:
                        end = _read_from(old, position.offset, max_lines, max_line_bytes,
                                         lines)
                        if len(lines) >= max_lines:
                            return ReadResult(tuple(lines), Position(
                                position.dev, position.ino, end, position.head), tuple(notes),
                                True)
                    notes.append(f"{path} was rotated: finished the old file, reading the new one")
        end = _read_from(f, offset, max_lines, max_line_bytes, lines)
        more = len(lines) >= max_lines
        return ReadResult(tuple(lines), Position(st.st_dev, st.st_ino, end, _head(f)),
                          tuple(notes), more)


def _rotated(path: str, position: Position) -> IO[bytes] | None:
    """The renamed file the position belongs to: PATH.0 or PATH.1 by identity, or
    PATH.0.gz (newsyslog's Z flag compresses it at once) by the hash of its first line."""
    for candidate in (path + ".0", path + ".1"):
        try:
            f = open(candidate, "rb")  # noqa: SIM115 - returned open to the caller
        except OSError:
            continue
        if _same(f, position):
            return f
        f.close()
    if position.head:
        try:
            z = cast(IO[bytes], gzip.open(path + ".0.gz", "rb"))  # noqa: SIM115 - returned
            if _head(z) == position.head:
                return z
            z.close()
        except (OSError, EOFError):
            pass
    return None


def iter_lines(path: str, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Every line of a log file, streamed; a .gz file (newsyslog's older ones) is gunzipped."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for raw in f:
            yield _decode(raw, max_line_bytes)


def check_readable(path: str) -> None:
    """OSError (with its strerror) when path cannot be opened for reading."""
    with open(path, "rb"):
        pass


def history_files(path: str, rotated: int) -> list[str]:
    """PATH and up to `rotated` older files newsyslog left, oldest first:
    PATH.N.gz ... PATH.1.gz, PATH.0 (or PATH.0.gz), PATH."""
    out = []
    for n in range(rotated - 1, -1, -1):
        for name in (f"{path}.{n}", f"{path}.{n}.gz"):
            if os.path.exists(name):
                out.append(name)
                break
    return out + [path]


def new_text(text: str, position: Position | None) -> tuple[str, Position]:
    """The same reading for a file a Host gives as text (the demo and snapshot hosts):
    identity (0, 0), offset in UTF-8 bytes; a shorter text was replaced."""
    data = text.encode("utf-8", "surrogateescape")
    offset = position.offset if position is not None and position.offset <= len(data) else 0
    end = data.rfind(b"\n", offset) + 1
    if end <= offset:
        return "", Position(0, 0, offset)
    return data[offset:end].decode("utf-8", "replace"), Position(0, 0, end)


# --- the state file -------------------------------------------------------------------------

def load_state(path: str) -> LogState:
    """The kept position and totals; a missing or unreadable file starts afresh."""
    data = load_record(path)
    if data is None or data.get("version") != STATE_VERSION:
        return LogState()
    pos = data.get("position")
    position = None
    if isinstance(pos, dict) and all(isinstance(pos.get(k), int) and not isinstance(
            pos.get(k), bool) and pos[k] >= 0 for k in ("dev", "ino", "offset")):
        head = pos.get("head")
        position = Position(pos["dev"], pos["ino"], pos["offset"],
                            head if isinstance(head, str) else "")
    totals = data.get("totals")
    return LogState(position, totals if isinstance(totals, dict) else {})


def save_state(path: str, state: LogState) -> None:
    """Write position and totals at once (atomic rename); mode 0600: no one else needs it."""
    pos = state.position
    data = {"version": STATE_VERSION,
            "position": None if pos is None else {"dev": pos.dev, "ino": pos.ino,
                                                  "offset": pos.offset, "head": pos.head},
            "totals": state.totals}
    save_record(path, data, 0o600)


@contextmanager
def kept_state(path: str) -> Iterator[None]:
    """Hold the state file's lock while its position is read, advanced and saved: two
    collections at once (serve's child and `metrics`) must not count a line twice."""
    with locked(f"{path}.lock"):
        yield
