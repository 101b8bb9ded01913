"""The demo host's state file: one JSON document shared by separate processes.

`serve`, `check`, `repair` and the `demo ...` event commands all open the same
file.  Every reader takes a shared flock(2) on a sibling lock file and every
change is load -> change -> atomic save under an exclusive one, so two
processes changing the host at once never lose an update and a reader never
sees half a file.  The state itself is plain JSON (dicts, lists, numbers,
strings) so that it can be read and edited by hand; its fields are described
in events.fresh_state(), which builds the healthy host.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..atomic import replace_file
from ..base import HostError

STATE_VERSION = 1
# Top-level keys a state file must have; a file without them is not ours.
REQUIRED_KEYS = ("version", "hostname", "boot_time", "sysctl", "files", "procs", "pf",
                 "npppd", "sessions")


# The state file's document and every object in it: plain JSON (see above),
# whose fields events.fresh_state() describes.
State = dict[str, Any]
JsonObject = dict[str, Any]


class DemoStateError(HostError):
    """The demo state file cannot be used: one line naming the file and the fault."""


def default_state_path() -> Path:
    """$XDG_STATE_HOME/obsdvpn-agent/demo-state.json, else ~/.local/state/..."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return Path(base) / "obsdvpn-agent" / "demo-state.json"


class StateStore:
    """Loads and saves one state file; `factory(now)` builds a missing one."""

    def __init__(self, path: Path, factory: Callable[[float], State],
                 clock: Callable[[], float]) -> None:
        self.path = Path(path)
        self._factory = factory
        self._clock = clock
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        # The last state read() decoded, and the identity of the file it came
        # from.  A collection asks for the state some twenty times (each
        # command, file and process list), and decoding it is most of a demo
        # collection's time at 10,000 sessions.  Every write replaces the file
        # (atomic.replace_file(): a new inode), and a hand edit changes its
        # mtime or size, so an unchanged identity is an unchanged state.
        self._cached: tuple[tuple[int, int, int, int], State] | None = None
        # One decoding for the collector threads that ask at the same moment.
        self._cache_lock = threading.Lock()

    def read(self) -> State:
        """The current state, created healthy if missing.

        Shared by every read() until the file changes, so it is read-only:
        changes go through change(), which decodes a copy of its own.
        """
        with self._cache_lock, self._locked(fcntl.LOCK_SH):
            try:
                # Taken before the file is read: a change in between makes the
                # next read() decode again, never keep a new text under an old key.
                st = os.stat(self.path)
            except OSError:
                st = None                   # as Path.exists(): create it below
            if st is not None:
                identity = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
                if self._cached is not None and self._cached[0] == identity:
                    return self._cached[1]
                self._cached = None
                state = self._load()
                self._cached = (identity, state)
                return state
        # Missing: create it under the exclusive lock (another process may win).
        with self.change() as state:
            pass
        return state

    @contextmanager
    def change(self) -> Iterator[State]:
        """Yield the state for changing; saved atomically when the block ends.

        An exception inside the block leaves the file untouched.
        """
        with self._locked(fcntl.LOCK_EX):
            state = self._load() if self.path.exists() else self._factory(self._clock())
            yield state
            self._save(state)

    def replace(self, state: State) -> None:
        """Overwrite whatever is there (used by `demo reset`, even on a corrupt file)."""
        with self._locked(fcntl.LOCK_EX):
            self._save(state)

    @contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DemoStateError(
                f"{self.path}: cannot open lock file: {exc.strerror}") from None
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _load(self) -> dict:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DemoStateError(f"{self.path}: cannot read demo state: {exc.strerror}")
        except UnicodeDecodeError:
            raise DemoStateError(f"{self.path}: corrupt demo state: not UTF-8 text "
                                 "(run `obsdvpn-agent demo reset` to start over)")
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DemoStateError(
                f"{self.path}: corrupt demo state: invalid JSON at line {exc.lineno} "
                f"column {exc.colno} (run `obsdvpn-agent demo reset` to start over)")
        if not isinstance(state, dict):
            raise DemoStateError(f"{self.path}: corrupt demo state: not a JSON object "
                                 "(run `obsdvpn-agent demo reset` to start over)")
        missing = [k for k in REQUIRED_KEYS if k not in state]
        if missing:
            raise DemoStateError(
                f"{self.path}: not a demo state file: missing {', '.join(missing)} "
                "(run `obsdvpn-agent demo reset` to start over)")
        if state["version"] != STATE_VERSION:
            raise DemoStateError(
                f"{self.path}: demo state version {state['version']!r} is not "
                f"{STATE_VERSION} (run `obsdvpn-agent demo reset` to start over)")
        return state

    def _save(self, state: State) -> None:
        data = json.dumps(state, separators=(",", ":")).encode("utf-8")
        try:
            replace_file(str(self.path), data, 0o600)
        except OSError as exc:
            raise DemoStateError(
                f"{self.path}: cannot write demo state: {exc.strerror}") from None
