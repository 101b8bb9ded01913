"""The Host interface: the one place the agent touches an OpenBSD host.

Three implementations share it: the local host (subprocess and psutil), the
snapshot replay host (a support bundle) and the demo simulator.  Everything
above this layer works on the values these methods return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class HostError(Exception):
    """A command or file the agent needs could not be had: one line, no traceback."""


class CommandNotFound(HostError):
    pass


class CommandTimeout(HostError):
    pass


class IsakmpdNotRunning(HostError):
    """isakmpd's FIFO has no reader (or does not exist): there is nobody to ask."""


class NotOpenBSD(HostError):
    pass


@dataclass(frozen=True)
class CommandResult:
    """What one command printed and how it exited.  Non-zero exits are data."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float = 0.0


@dataclass(frozen=True)
class FileInfo:
    """Metadata of a file, as stat(2) would give it."""

    path: str
    exists: bool
    mode: int = 0          # permission bits only, e.g. 0o600
    uid: int = 0
    gid: int = 0
    owner: str = ""
    group: str = ""
    size: int = 0


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    cmdline: tuple[str, ...]
    username: str = ""


@dataclass(frozen=True)
class HostInfo:
    """Who the agent runs as on that host, and what the host is."""

    hostname: str
    system: str            # "OpenBSD" on a real host
    release: str
    is_root: bool


class Host(Protocol):
    """What the rest of the agent may ask of a host."""

    label: str  # "local", "demo:/path/state.json", "snapshot:/dir"

    def info(self) -> HostInfo: ...

    def run(self, argv: Sequence[str], timeout_s: float) -> CommandResult:
        """Run argv (absolute path first, no shell).  Raises CommandNotFound or
        CommandTimeout; any exit code is returned as data."""
        ...

    def read_file(self, path: str) -> str:
        """Text of a file.  Raises FileNotFoundError / PermissionError / HostError."""
        ...

    def stat_file(self, path: str) -> FileInfo: ...

    def write_file(self, path: str, text: str, mode: int) -> str | None:
        """Replace a file atomically, keeping a backup of the old one.
        Returns the backup path (None when there was no old file)."""
        ...

    def chmod(self, path: str, mode: int) -> None: ...

    def chown(self, path: str, uid: int, gid: int) -> None: ...

    def processes(self) -> tuple[Process, ...]: ...

    def query_isakmpd(self, tag: str, timeout_s: float) -> str | None:
        """Ask the running isakmpd for one value, read-only, through its FIFO.

        Writes `C get TAG` to /var/run/isakmpd.fifo and returns the text
        isakmpd then writes to /var/run/isakmpd.result ("" when the tag is
        not set), or None when no new result appeared within timeout_s.
        Only commands.ISAKMPD_QUERY_TAGS are sent (ValueError otherwise).
        Raises HostError when isakmpd cannot be asked (no FIFO, no reader,
        not root)."""
        ...
