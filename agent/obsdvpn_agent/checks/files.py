"""files.*: the VPN's secret files are private to root."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands import IPSEC_CONF, NPPPD_USERS
from ..host.base import FileInfo
from ..probes import ProbeFailure, failed
from . import PHASE_FILES, Action, Result, Results, Status

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts


def evaluate(facts: Facts, cfg: Config) -> Results:
    yield _ipsec_conf(facts.files.stat.get(IPSEC_CONF))
    yield _npppd_users(facts.files.stat.get(NPPPD_USERS))


def _tighten(cid: str, info: FileInfo) -> tuple[Action, ...]:
    """At most rw for the owner, and only bits it had (never widens), and owned by root."""
    actions = []
    tight = info.mode & 0o600
    if tight != info.mode:
        actions.append(Action(cid, f"make {info.path} private to its owner", f"{info.mode:04o}",
                              f"{tight:04o}", path=info.path, mode=tight, order=(PHASE_FILES,)))
    if info.uid != 0:
        actions.append(Action(cid, f"give {info.path} to root", info.owner or str(info.uid),
                              "root", path=info.path, owner_root=True, order=(PHASE_FILES,)))
    return tuple(actions)


def _values(info: FileInfo) -> dict[str, bool | int | str]:
    return {"path": info.path, "exists": info.exists, "mode": info.mode, "uid": info.uid}


def _ipsec_conf(info: FileInfo | ProbeFailure | None) -> Result:
    cid = "files.ipsec_conf"
    if info is None or failed(info):
        return Result(cid, Status.UNKNOWN, f"cannot stat {IPSEC_CONF}: {info}")
    if not info.exists:
        return Result(cid, Status.CRITICAL, f"{IPSEC_CONF} does not exist, so there is no IPsec "
                                            "policy to load: restore it", _values(info))
    owner = info.owner or str(info.uid)
    # ipsecctl refuses a file owned by another user or with group write/exec or
    # any other-bits (sbin/ipsecctl/parse.y check_file_secrecy: 0o037).
    if info.uid != 0 or info.mode & 0o037:
        return Result(cid, Status.CRITICAL,
                      f"{IPSEC_CONF} is mode {info.mode:04o} owned by {owner}, so ipsecctl "
                      "refuses to load it and the PSK may be readable: run "
                      f"`chown root:wheel {IPSEC_CONF}` and `chmod 600 {IPSEC_CONF}`",
                      _values(info), _tighten(cid, info))
    if info.mode & 0o040:
        return Result(cid, Status.WARNING,
                      f"{IPSEC_CONF} is mode {info.mode:04o}, so its group can read the PSK: "
                      f"run `chmod 600 {IPSEC_CONF}`", _values(info), _tighten(cid, info))
    return Result(cid, Status.OK, f"{IPSEC_CONF} is mode {info.mode:04o} and owned by root",
                  _values(info))


def _npppd_users(info: FileInfo | ProbeFailure | None) -> Result:
    cid = "files.npppd_users"
    if info is None or failed(info):
        return Result(cid, Status.UNKNOWN, f"cannot stat {NPPPD_USERS}: {info}")
    if not info.exists:
        return Result(cid, Status.CRITICAL, f"{NPPPD_USERS} does not exist, so no VPN user can "
                                            "log in: restore it", _values(info))
    if info.mode & 0o077 or info.uid != 0:
        return Result(cid, Status.WARNING,
                      f"{NPPPD_USERS} is mode {info.mode:04o} owned by {info.owner or info.uid}, "
                      f"so others can read the VPN passwords: run `chown root {NPPPD_USERS}` and "
                      f"`chmod 600 {NPPPD_USERS}`", _values(info), _tighten(cid, info))
    return Result(cid, Status.OK, f"{NPPPD_USERS} is private to root", _values(info))
