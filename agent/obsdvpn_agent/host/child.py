"""The short-lived `obsdvpn-agent collect` children that `serve` runs.

Each child runs in its own process group, so that stopping `serve` (SIGTERM
from rcctl) also stops a collection under way, with the commands it runs,
instead of leaving it re-parented to init.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading

_running: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


class ChildFailed(Exception):
    """The child did not finish, or said why it failed: one line."""


def run_child(argv: list[str], stdin: bytes, timeout_s: float) -> bytes:
    """Run argv with stdin, return its stdout; ChildFailed with its last word if it fails."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    with _lock:
        _running.add(proc)
    try:
        out, err = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        proc.communicate()
        raise ChildFailed(f"collection did not finish within {timeout_s:g} s") from None
    finally:
        with _lock:
            _running.discard(proc)
    if proc.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        last = said[-1].removeprefix("obsdvpn-agent: ") if said else ""
        raise ChildFailed(last or f"collector exited {proc.returncode}")
    return out


def stop_children() -> None:
    """Stop every child under way (serve is stopping)."""
    with _lock:
        procs = list(_running)
    for proc in procs:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
