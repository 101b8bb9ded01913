"""The agent's own files: the repair lock and the small JSON records it keeps.

Everything above the host layer names these files by plain paths (the CLI
picks them: /var/db/obsdvpn-agent on a real host, beside the state file for
the demo host) and reads or writes them only through this module.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import ExitStack
from types import TracebackType
from typing import Any

from .atomic import replace_file
from .flock import locked

STATE_DIR = "/var/db/obsdvpn-agent"
REPAIR_LOCK = "/var/run/obsdvpn-agent.repair.lock"


def load_record(path: str) -> dict[str, Any] | None:
    """A JSON object the agent wrote, or None when there is none (or it is not one)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def save_record(path: str, record: dict[str, Any], mode: int = 0o644) -> None:
    """Replace the record atomically, creating its directory (mode 755) if needed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    replace_file(path, (json.dumps(record, sort_keys=True) + "\n").encode(), mode)


class LockHeld(Exception):
    pass


class RepairLock:
    """An exclusive, non-blocking flock: cron, boot and an admin never repair at once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._held: ExitStack | None = None

    def __enter__(self) -> RepairLock:
        stack = ExitStack()
        try:
            fd = stack.enter_context(locked(self.path, fcntl.LOCK_EX | fcntl.LOCK_NB))
        except BlockingIOError:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                holder = f.read(32).strip() or "?"
            raise LockHeld(f"another repair holds the lock {self.path} (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._held = stack
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


def write_textfile(path: str, exposition: bytes) -> None:
    """Replace node_exporter's textfile atomically: it must never read half a file."""
    replace_file(path, exposition, 0o644)


# The agent's records, by name: in STATE_DIR on a real host (cli.App.agent_file()).
REPAIR_RECORD = "last-repair.json"   # what the last repair did, for metrics and check
CHECK_RECORD = "last-check.json"     # check --on-change: what was last printed
PAUSE_RECORD = "repair-pause.json"   # pause/resume
OBSERVED_RECORD = "observed.json"    # what root's check saw of isakmpd, for serve


def remove_record(path: str) -> bool:
    """Remove a record; False when there was none."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
