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
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from ..atomic import replace_file
from ..base import HostError
from ..flock import locked

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
        stack = ExitStack()
        try:
            stack.enter_context(locked(str(self._lock_path), how))
        except OSError as exc:
            raise DemoStateError(
                f"{self.path}: cannot open lock file: {exc.strerror}") from None
        with stack:
            yield

    def _load(self) -> State:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                text = f.read().decode("utf-8")
        except OSError as exc:
            raise DemoStateError(f"{self.path}: cannot read demo state: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise DemoStateError(f"{self.path}: corrupt demo state: not UTF-8 text "
                                 "(run `obsdvpn-agent demo reset` to start over)") from None
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DemoStateError(
                f"{self.path}: corrupt demo state: invalid JSON at line {exc.lineno} "
                f"column {exc.colno} (run `obsdvpn-agent demo reset` to start over)") from None
        except RecursionError:
            raise DemoStateError(f"{self.path}: corrupt demo state: JSON nested too deep "
                                 "(run `obsdvpn-agent demo reset` to start over)") from None
        except ValueError as exc:  # an integer of over 4300 digits
            raise DemoStateError(f"{self.path}: corrupt demo state: {str(exc).split(';')[0]} "
                                 "(run `obsdvpn-agent demo reset` to start over)") from None
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
        # The file is read once per command: check each version of it once.
        version = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if _CHECKED.get(str(self.path)) != version:
            problem = _shape_problem(state, _expected_shape(), "")
            if problem:
                raise DemoStateError(f"{self.path}: corrupt demo state: {problem} "
                                     "(run `obsdvpn-agent demo reset` to start over)")
            _CHECKED[str(self.path)] = version
        return state

    def _save(self, state: State) -> None:
        data = json.dumps(state, separators=(",", ":")).encode("utf-8")
        try:
            replace_file(str(self.path), data, 0o600)
        except OSError as exc:
            raise DemoStateError(
                f"{self.path}: cannot write demo state: {exc.strerror}") from None


# --- what a state file must look like to be read at all --------------------------------
#
# The simulator indexes the state everywhere (state["sysctl"][name], a
# session's "rate"[2], a file's "mode" formatted as octal), so a hand-edited
# or hostile file is checked against the shape of a fresh state first: a
# wrong type is one line naming the field, never a TypeError deep inside.

# Objects keyed by names (sysctl names, paths, daemons, pf limit names);
# every other object is a record with the fields of a fresh state.
_MAPS = frozenset({"sysctl", "files", "procs", "limits", "counters", "rates"})
# Lists of objects whose fields vary with the input they were built from (pf
# rules compiled from whatever pf.conf, isakmpd's phase-1 policies): only
# their being lists of objects is checked, the simulator wrote the rest.
_OPAQUE = frozenset({"rules", "phase1"})
# Fields a record may lack: set only by some events (a session's L2TP control id
# exists once its login was logged).
_OPTIONAL = frozenset({"ctrl_id"})
# Numbers used as integers (octal modes, pids, indexes): a float there breaks formatting.
_INTEGERS = frozenset({"mode", "uid", "gid", "pid", "next_pid", "next_ifindex", "next_ppp_id",
                       "pppac_index", "ppp_id", "unit", "ifindex", "peer_port", "mru", "spi_in",
                       "spi_out", "version"})
# A shape is a tuple of alternatives, each "bool", "int", "num", "str",
# ("list", shape of the items), ("map", shape of the values) or ("record",
# {field: shape}); the empty tuple takes anything.
Shape = tuple[Any, ...]
_SHAPE: Shape | None = None
# path -> (device, inode, mtime, size) of the last version of it that passed.
_CHECKED: dict[str, tuple[int, int, int, int]] = {}


def _expected_shape() -> Shape:
    """The shape of a fresh state (one session, so that a session has an example)."""
    global _SHAPE
    if _SHAPE is None:
        from .events import fresh_state
        _SHAPE = _shape_of(fresh_state(0.0, n_sessions=1), "")
    return _SHAPE


def _shape_of(value: object, key: str) -> Shape:
    if value is None:
        return ()  # set later to what the simulator needs: not checked here
    if isinstance(value, bool):
        return ("bool",)
    if isinstance(value, (int, float)):
        return ("int",) if key in _INTEGERS else ("num",)
    if isinstance(value, str):
        return ("str",)
    if isinstance(value, list):
        if key in _OPAQUE:
            return (("list", (("record", {}),)),)
        return (("list", _union(_shape_of(v, key) for v in value)),)
    assert isinstance(value, dict), value
    if key in _MAPS:
        return (("map", _union(_shape_of(v, k) for k, v in value.items())),)
    return (("record", {k: _shape_of(v, k) for k, v in value.items()}),)


def _union(shapes: Iterable[Shape]) -> Shape:
    alternatives: dict[str, object] = {}
    for shape in shapes:
        for alt in shape:
            alternatives.setdefault(_name(alt), alt)  # the first example of each kind
    return tuple(alternatives.values())


def _name(alt: Any) -> str:
    return alt if isinstance(alt, str) else str(alt[0])


_WORDS = {"bool": "true or false", "int": "an integer", "num": "a number", "str": "a string",
          "list": "a list", "map": "an object", "record": "an object"}
_TYPES: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "num": (int, float),
                                       "str": (str,), "list": (list,), "map": (dict,),
                                       "record": (dict,)}


def _shape_problem(value: object, shape: Shape, where: str = "") -> str | None:
    """What is wrong with value for shape, naming the field, or None."""
    found = _problem(value, shape, "")
    if found is None:
        return None
    parts, message = found
    path = "".join(reversed(parts)).lstrip(".")
    return f"'{where}{path}' {message}"


def _problem(value: Any, shape: Shape, field: str) -> tuple[list[str], str] | None:
    """(path parts, innermost first; what is wrong) or None.  The path is only
    built for the one bad field: a state of 5000 sessions is read often."""
    if not shape:
        return None
    for alt in shape:
        name = _name(alt)
        if isinstance(value, _TYPES[name]) and (name == "bool" or not isinstance(value, bool)):
            break
    else:
        return [], "must be " + " or ".join(_WORDS[_name(a)] for a in shape)
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return ([], "holds a NUL byte") if "\0" in value else None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > 2**64:
            return [], "must be a finite number"
        if field == "mode" and not 0 <= value <= 0o7777:
            return [], "must be a file mode from 0 to 0o7777"
        if field in _INTEGERS and value < 0:
            return [], "must not be negative"
        return None
    kind, inner = alt
    container: Any = value  # a list or a dict, as alt says
    if kind == "list":
        for i, v in enumerate(container):
            found = _problem(v, inner, field)
            if found:
                found[0].append(f"[{i}]")
                return found
        return None
    if kind == "map":
        for name, v in container.items():
            found = ([], "holds a NUL byte") if "\0" in name else _problem(v, inner, name)
            if found:
                found[0].append(f"[{name!r}]")
                return found
        return None
    for key, sub in inner.items():
        if key not in container:
            if key in _OPTIONAL:
                continue
            return [f".{key}"], "is missing"
        found = _problem(container[key], sub, key)
        if found:
            found[0].append(f".{key}")
            return found
    return None
