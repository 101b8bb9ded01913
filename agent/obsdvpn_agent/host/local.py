"""The local OpenBSD host: subprocess for commands, os/psutil for the rest.

Commands run without a shell, by absolute path, with LC_ALL=C and a timeout.
A non-zero exit code is returned as data; whether it means failure is the
probe's business (`rcctl check` exits 1 for a stopped daemon).
"""

from __future__ import annotations

import grp
import os
import platform
import pwd
import socket
import stat
import subprocess
import time
from typing import Sequence

from .atomic import replace_file
from .base import (CommandNotFound, CommandResult, CommandTimeout, FileInfo, HostError,
                   HostInfo, InterfaceCounters, NotOpenBSD, Process)

_ENV = {"LC_ALL": "C", "PATH": "/bin:/sbin:/usr/bin:/usr/sbin"}
DOAS = "/usr/bin/doas"


class LocalHost:
    label = "local"

    def __init__(self, root_argvs: frozenset[tuple[str, ...]] = frozenset(),
                 use_doas: bool = False) -> None:
        if platform.system() != "OpenBSD":
            raise NotOpenBSD(
                f"this is {platform.system()}, not OpenBSD: nothing to watch here; "
                "try the simulated host with --demo, or a captured host with --snapshot DIR")
        self._is_root = os.geteuid() == 0
        # Commands that need root go through `doas -n` (never prompts) when the
        # agent runs unprivileged and doas is configured for exactly these argvs.
        self._doas_argvs = root_argvs if (use_doas and not self._is_root) else frozenset()

    def info(self) -> HostInfo:
        return HostInfo(socket.gethostname(), platform.system(), platform.release(),
                        self._is_root)

    def run(self, argv: Sequence[str], timeout_s: float) -> CommandResult:
        argv = tuple(argv)
        full = (DOAS, "-n", *argv) if argv in self._doas_argvs else argv
        start = time.monotonic()
        try:
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=_ENV)
        except FileNotFoundError:
            raise CommandNotFound(f"{full[0]}: command not found")
        except PermissionError:
            raise HostError(f"{full[0]}: permission denied")
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _abandon(proc)
            raise CommandTimeout(f"`{' '.join(argv)}` did not finish within {timeout_s:g} s")
        return CommandResult(argv, proc.returncode, out.decode("utf-8", "replace"),
                             err.decode("utf-8", "replace"), time.monotonic() - start)

    def read_file(self, path: str) -> str:
        # surrogateescape: a byte that is not UTF-8 (in a comment of sysctl.conf,
        # say) comes back unchanged when repair writes the file again.
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")

    def stat_file(self, path: str) -> FileInfo:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return FileInfo(path, False)
        return FileInfo(path, True, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid),
                        st.st_size)

    def write_file(self, path: str, text: str, mode: int) -> str | None:
        return write_atomically(path, text, mode)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(path, uid, gid)

    def processes(self) -> tuple[Process, ...]:
        import psutil  # only the local host needs it; keeps `check` on demo light

        procs = []
        for p in psutil.process_iter(["pid", "name", "cmdline", "username"]):
            info = p.info
            procs.append(Process(info["pid"], info["name"] or "",
                                 tuple(info["cmdline"] or ()), info["username"] or ""))
        return tuple(procs)

    def interface_counters(self) -> dict[str, InterfaceCounters]:
        import psutil

        return {name: InterfaceCounters(name, c.bytes_recv, c.bytes_sent, c.packets_recv,
                                        c.packets_sent)
                for name, c in psutil.net_io_counters(pernic=True).items()}


def _abandon(proc: subprocess.Popen) -> None:
    """Give up on a command that timed out.

    Through doas the child runs as root and the unprivileged agent may not
    signal it: then it is left to finish on its own (its pipes closed, so it
    cannot block on them) instead of waiting for it forever.
    """
    try:
        proc.kill()
    except PermissionError:
        pass
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def write_atomically(path: str, text: str, mode: int) -> str | None:
    """Replace path with text, keeping the old file as PATH.obsdvpn-agent.bak."""
    return replace_file(path, text.encode("utf-8", "surrogateescape"), mode, backup=True)
