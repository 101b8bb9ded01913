"""DemoHost: the simulated OpenBSD L2TP/IPsec host behind the Host interface."""

from __future__ import annotations

import pathlib
import time
from typing import Callable, Sequence

from ..base import CommandResult, FileInfo, HostInfo, InterfaceCounters, Process
from . import commands, daemons, events
from . import sessions as sess
from .state import StateStore

BACKUP_SUFFIX = ".obsdvpn-agent.bak"  # the same backup name the local host keeps


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
        return HostInfo(hostname, "OpenBSD", "7.6", self.as_root,
                        {"demo_state": str(self.state_path)})

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
        return entry["text"]

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

    def interface_counters(self) -> dict[str, InterfaceCounters]:
        state = self.store.read()
        now = self.clock()
        out: dict[str, InterfaceCounters] = {}
        total = [0, 0, 0, 0]
        for s in state["sessions"]:
            ib, ip, _, ob, op, _ = sess.counters(s, now)
            total = [total[0] + ib, total[1] + ob, total[2] + ip, total[3] + op]
            if s["ifname"].startswith("pppx"):
                out[s["ifname"]] = InterfaceCounters(s["ifname"], ib, ob, ip, op)
        uptime = max(0.0, now - state["boot_time"])
        # ESP-in-UDP adds about 60 bytes a packet on the wire; background traffic
        # (ssh, ntp, dns) keeps the egress counters moving with no clients.
        egress = state["egress"]["ifname"]
        out[egress] = InterfaceCounters(
            egress, int(total[0] + 60 * total[2] + 900 * uptime),
            int(total[1] + 60 * total[3] + 700 * uptime),
            int(total[2] + 3 * uptime), int(total[3] + 2 * uptime))
        out["enc0"] = InterfaceCounters("enc0", total[0], total[1], total[2], total[3])
        out["lo0"] = InterfaceCounters("lo0", int(50 * uptime), int(50 * uptime),
                                       int(uptime), int(uptime))
        return out

    # --- helpers ----------------------------------------------------------------

    def _change_file(self, path: str, change, owner_may: bool) -> None:
        with self.store.change() as state:
            entry = state["files"].get(path)
            if entry is None:
                raise FileNotFoundError(2, "No such file or directory", path)
            if not self.as_root and not (owner_may and entry["uid"] == events.USER_UID):
                raise PermissionError(1, "Operation not permitted", path)
            change(entry)
