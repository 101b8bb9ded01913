"""The local OpenBSD host: subprocess for commands, os/psutil for the rest.

Commands run without a shell, by absolute path, with LC_ALL=C and a timeout.
A non-zero exit code is returned as data; whether it means failure is the
probe's business (`rcctl check` exits 1 for a stopped daemon).
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import platform
import pwd
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Sequence

from ..commands import (
    ISAKMPD_FIFO,
    ISAKMPD_QUERY_LOCK,
    ISAKMPD_RESULT,
    isakmpd_query_line,
)
from .atomic import replace_file
from .base import (
    CommandNotFound,
    CommandResult,
    CommandTimeout,
    FileInfo,
    HostError,
    HostInfo,
    IsakmpdNotRunning,
    NotOpenBSD,
    Process,
)

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
            raise CommandNotFound(f"{full[0]}: command not found") from None
        except PermissionError:
            raise HostError(f"{full[0]}: permission denied") from None
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _abandon(proc)
            raise CommandTimeout(
                f"`{' '.join(argv)}` did not finish within {timeout_s:g} s") from None
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
                        _user_name(st.st_uid), _group_name(st.st_gid),
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

    def query_isakmpd(self, tag: str, timeout_s: float) -> str | None:
        line = isakmpd_query_line(tag)
        if not self._is_root:
            # ui.c ui_init(): mkfifo(ui_fifo, 0600), owned by root.
            raise HostError(f"asking isakmpd through {ISAKMPD_FIFO} needs root "
                            "(the FIFO is mode 0600)")
        return query_isakmpd_fifo(line, timeout_s)


def _abandon(proc: subprocess.Popen[bytes]) -> None:
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


# How often the result file is looked at, and how long it must stay unchanged
# before it is read: isakmpd truncates it (fopen "w") and writes the value at
# fclose(), microseconds apart, so a file caught in between settles at once.
_POLL_S = 0.01
_SETTLE_S = 0.02
_RESULT_MAX_BYTES = 64 * 1024


def query_isakmpd_fifo(line: str, timeout_s: float, fifo: str = ISAKMPD_FIFO,
                       result: str = ISAKMPD_RESULT, lock: str = ISAKMPD_QUERY_LOCK,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Write LINE to isakmpd's FIFO and return the result file it rewrites, or None.

    sbin/isakmpd/ui.c rev 1.58: isakmpd holds the FIFO open O_RDWR, reads
    one command a line, and for `C get` opens RESULT_FILE with fopen(.., "w")
    (truncate, same inode) and writes `"%s\n"` of the value, or nothing for
    a tag that is not set.  "Rewritten after our write" is judged by the
    file's (inode, size, mtime, ctime) before and after; the whole query,
    lock wait included, is bounded by timeout_s.  The FIFO is opened
    O_WRONLY|O_NONBLOCK: ENXIO means nothing holds it open for reading, that
    is, isakmpd is not running, and the agent never blocks on a dead FIFO.
    """
    deadline = clock() + timeout_s
    try:
        lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise HostError(f"{lock}: cannot open the isakmpd query lock: {exc.strerror}") from None
    try:
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    return None       # another query held the result file all along
                sleep(_POLL_S)
        before = _stamp(result)
        _write_fifo(fifo, line)
        while clock() < deadline:
            seen = _stamp(result)
            if seen is not None and seen != before:
                sleep(_SETTLE_S)
                if _stamp(result) == seen:
                    return _read_result(result)
                continue
            sleep(_POLL_S)
        return None
    finally:
        os.close(lock_fd)             # closing drops the flock


def _stamp(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HostError(f"{path}: {exc.strerror}") from None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _write_fifo(fifo: str, line: str) -> None:
    try:
        st = os.lstat(fifo)
    except FileNotFoundError:
        raise IsakmpdNotRunning(f"{fifo}: no such FIFO: isakmpd is not running (it makes the FIFO "
                        "when it starts)") from None
    except OSError as exc:
        raise HostError(f"{fifo}: {exc.strerror}") from None
    if not stat.S_ISFIFO(st.st_mode):
        raise HostError(f"{fifo} is not a FIFO: not asking isakmpd through it")
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise IsakmpdNotRunning("isakmpd's FIFO has no reader: isakmpd is not running") \
                from None
        raise HostError(f"{fifo}: {exc.strerror}") from None
    try:
        data = line.encode("ascii")
        # Shorter than PIPE_BUF, so one write(2) is atomic or fails whole.
        if os.write(fd, data) != len(data):
            raise HostError(f"{fifo}: short write")
    except BlockingIOError:
        raise HostError(f"{fifo} is full: isakmpd is not reading its commands") from None
    except OSError as exc:
        raise HostError(f"{fifo}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _read_result(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise HostError(f"{path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HostError(f"{path} is not a regular file")
        data = os.read(fd, _RESULT_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > _RESULT_MAX_BYTES:
        raise HostError(f"{path}: more than {_RESULT_MAX_BYTES} bytes: not a `C get` answer")
    return data.decode("utf-8", "replace")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def write_atomically(path: str, text: str, mode: int) -> str | None:
    """Replace path with text, keeping the old file as PATH.obsdvpn-agent.bak."""
    return replace_file(path, text.encode("utf-8", "surrogateescape"), mode, backup=True)
