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
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..base import HostError
from ..atomic import replace_file

STATE_VERSION = 1
# Top-level keys a state file must have; a file without them is not ours.
REQUIRED_KEYS = ("version", "hostname", "boot_time", "sysctl", "files", "procs", "pf",
                 "npppd", "sessions")


class DemoStateError(HostError):
    """The demo state file cannot be used: one line naming the file and the fault."""


def default_state_path() -> Path:
    """$XDG_STATE_HOME/obsdvpn-agent/demo-state.json, else ~/.local/state/..."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return Path(base) / "obsdvpn-agent" / "demo-state.json"


class StateStore:
    """Loads and saves one state file; `factory(now)` builds a missing one."""

    def __init__(self, path: Path, factory: Callable[[float], dict],
                 clock: Callable[[], float]) -> None:
        self.path = Path(path)
        self._factory = factory
        self._clock = clock
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict:
        """The current state (a private copy), created healthy if missing."""
        with self._locked(fcntl.LOCK_SH):
            if self.path.exists():
                return self._load()
        # Missing: create it under the exclusive lock (another process may win).
        with self.change() as state:
            pass
        return state

    @contextmanager
    def change(self) -> Iterator[dict]:
        """Yield the state for changing; saved atomically when the block ends.

        An exception inside the block leaves the file untouched.
        """
        with self._locked(fcntl.LOCK_EX):
            state = self._load() if self.path.exists() else self._factory(self._clock())
            yield state
            self._save(state)

    def replace(self, state: dict) -> None:
        """Overwrite whatever is there (used by `demo reset`, even on a corrupt file)."""
        with self._locked(fcntl.LOCK_EX):
            self._save(state)

    @contextmanager
    def _locked(self, how: int) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DemoStateError(f"{self.path}: cannot open lock file: {exc.strerror}")
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

    def _save(self, state: dict) -> None:
        data = json.dumps(state, separators=(",", ":")).encode("utf-8")
        try:
            replace_file(str(self.path), data, 0o600)
        except OSError as exc:
            raise DemoStateError(f"{self.path}: cannot write demo state: {exc.strerror}")
