"""DemoHost: the simulated OpenBSD L2TP/IPsec host behind the Host interface."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence

from ...commands import isakmpd_query_line
from ..base import (
    CommandResult,
    FileInfo,
    HostError,
    HostInfo,
    IsakmpdNotRunning,
    Process,
)
from . import commands, daemons, events
from .state import JsonObject, StateStore
from .syslog import DAEMON_LOG

BACKUP_SUFFIX = ".obsdvpn-agent.bak"  # the same backup name the local host keeps

# `demo write PATH`: the files an admin edits on a VPN host, with the mode a
# missing one gets (etc/Makefile and the daemons' man pages: pf.conf and
# ipsec.conf 600, npppd-users 600, /var/log/daemon 640 per newsyslog.conf).
WRITABLE = {events.PF_CONF: 0o600, events.IPSEC_CONF: 0o600, events.NPPPD_CONF: 0o640,
            events.NPPPD_USERS: 0o600, events.SYSCTL_CONF: 0o644, DAEMON_LOG: 0o640}
LOADERS = {events.PF_CONF: "pfctl -f /etc/pf.conf",
           events.IPSEC_CONF: "ipsecctl -f /etc/ipsec.conf",
           events.SYSCTL_CONF: "sysctl NAME=VALUE, or demo reboot",
           DAEMON_LOG: "nothing: syslogd appends to it"}
MAX_WRITE_BYTES = 1024 * 1024


class DemoHost:
    """A simulated OpenBSD 7.6 VPN host whose state lives in one JSON file.

    `as_root=False` makes it answer like OpenBSD answers an unprivileged user
    (permission denied from pfctl, npppctl, ipsecctl -sa, rcctl start, ...).
    """

    def __init__(self, state_path: pathlib.Path, as_root: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.state_path = pathlib.Path(state_path)
        self.as_root = as_root
        self.clock = clock
        self.store = StateStore(self.state_path, events.fresh_state, clock)
        self.label = f"demo:{self.state_path}"

    # --- Host interface -----------------------------------------------------------

    def info(self) -> HostInfo:
        state = self.store.read()
        hostname = state["sysctl"].get("kern.hostname", state["hostname"])
        return HostInfo(hostname, "OpenBSD", "7.6", self.as_root)

    def run(self, argv: Sequence[str], timeout_s: float) -> CommandResult:
        argv = tuple(argv)
        start = time.monotonic()
        if commands.mutates(argv):
            with self.store.change() as state:
                code, out, err = commands.run_command(state, argv, self.clock(),
                                                      self.as_root)
        else:
            state = self.store.read()
            code, out, err = commands.run_command(state, argv, self.clock(), self.as_root)
        return CommandResult(argv, code, out, err, time.monotonic() - start)

    def read_file(self, path: str) -> str:
        entry = self.store.read()["files"].get(path)
        if entry is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        if not events.readable(entry, self.as_root):
            raise PermissionError(13, "Permission denied", path)
        text: str = entry["text"]
        return text

    def stat_file(self, path: str) -> FileInfo:
        entry = self.store.read()["files"].get(path)
        if entry is None:
            return FileInfo(path, False)
        return FileInfo(path, True, entry["mode"], entry["uid"], entry["gid"],
                        commands.USER_NAMES.get(entry["uid"], str(entry["uid"])),
                        commands.GROUP_NAMES.get(entry["gid"], str(entry["gid"])),
                        len(entry["text"].encode()))

    def write_file(self, path: str, text: str, mode: int) -> str | None:
        """Atomic replace keeping `path.obsdvpn-agent.bak`, like the local host."""
        if not self.as_root:  # /etc and its files are root's
            raise PermissionError(13, "Permission denied", path)
        with self.store.change() as state:
            files = state["files"]
            old = files.get(path)
            backup = None
            if old is not None:
                backup = path + BACKUP_SUFFIX
                files[backup] = dict(old)
            files[path] = {"text": text, "mode": mode & 0o7777,
                           "uid": old["uid"] if old else 0, "gid": old["gid"] if old else 0}
        return backup

    def chmod(self, path: str, mode: int) -> None:
        self._change_file(path, lambda e: e.update(mode=mode & 0o7777),
                          owner_may=True)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._change_file(path, lambda e: e.update(uid=uid, gid=gid), owner_may=False)

    def processes(self) -> tuple[Process, ...]:
        state = self.store.read()
        return tuple(Process(*proc) for proc in daemons.processes(state))

    def query_isakmpd(self, tag: str, timeout_s: float) -> str | None:
        """The demo isakmpd's answer to `C get TAG`, at once (see daemons.isakmpd_get)."""
        isakmpd_query_line(tag)
        if not self.as_root:
            raise HostError("asking isakmpd through /var/run/isakmpd.fifo needs root "
                            "(the FIFO is mode 0600)")
        state = self.store.read()
        if not daemons.running(state, "isakmpd"):
            raise IsakmpdNotRunning("isakmpd's FIFO has no reader: isakmpd is not running")
        return daemons.isakmpd_get(state, tag)

    def write_simulated(self, path: str, text: str) -> str:
        """`demo write PATH`: replace a simulated file, keeping its owner and mode.

        Nothing is loaded: the admin does that (`demo run -- pfctl -f
        /etc/pf.conf`), as on a real host.  Returns one line for the user.
        """
        if path not in WRITABLE:
            raise HostError(f"{path} is not a file the demo simulates "
                            f"(one of {', '.join(WRITABLE)})")
        if len(text.encode("utf-8", "surrogateescape")) > MAX_WRITE_BYTES:
            raise HostError(f"more than {MAX_WRITE_BYTES} bytes for {path}")
        with self.store.change() as state:
            files = state["files"]
            old = files.get(path)
            mode, uid, gid = ((old["mode"], old["uid"], old["gid"]) if old
                              else (WRITABLE[path], 0, 0))
            files[path] = {"text": text, "mode": mode, "uid": uid, "gid": gid}
        owner = commands.USER_NAMES.get(uid, str(uid))
        group = commands.GROUP_NAMES.get(gid, str(gid))
        return (f"{path}: {len(text.splitlines())} line(s) written, {owner}:{group} "
                f"mode {mode:04o}; nothing loaded (load it as on OpenBSD, e.g. "
                f"`obsdvpn-agent demo run -- {LOADERS.get(path, 'rcctl restart npppd')}`)")

    # --- helpers ----------------------------------------------------------------

    def _change_file(self, path: str, change: Callable[[JsonObject], object],
                     owner_may: bool) -> None:
        with self.store.change() as state:
            entry = state["files"].get(path)
            if entry is None:
                raise FileNotFoundError(2, "No such file or directory", path)
            if not self.as_root and not (owner_may and entry["uid"] == events.USER_UID):
                raise PermissionError(1, "Operation not permitted", path)
            change(entry)
