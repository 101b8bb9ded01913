"""files.*: the VPN's secret files are private to root."""

from __future__ import annotations

from ..commands import IPSEC_CONF, NPPPD_USERS
from ..probes import failed
from . import Result, Status


def evaluate(facts, cfg):
    yield _ipsec_conf(facts.files.get(IPSEC_CONF))
    yield _npppd_users(facts.files.get(NPPPD_USERS))


def _ipsec_conf(info) -> Result:
    cid = "files.ipsec_conf"
    if info is None or failed(info):
        return Result(cid, Status.UNKNOWN, f"cannot stat {IPSEC_CONF}: {info}")
    if not info.exists:
        return Result(cid, Status.CRITICAL, f"{IPSEC_CONF} does not exist, so there is no IPsec "
                                            "policy to load: restore it")
    owner = info.owner or str(info.uid)
    # ipsecctl refuses a file owned by another user or with group write/exec or
    # any other-bits (sbin/ipsecctl/parse.y check_file_secrecy: 0o037).
    if info.uid != 0 or info.mode & 0o037:
        return Result(cid, Status.CRITICAL,
                      f"{IPSEC_CONF} is mode {info.mode:04o} owned by {owner}, so ipsecctl "
                      "refuses to load it and the PSK may be readable: run "
                      f"`chown root:wheel {IPSEC_CONF}` and `chmod 600 {IPSEC_CONF}`")
    if info.mode & 0o040:
        return Result(cid, Status.WARNING,
                      f"{IPSEC_CONF} is mode {info.mode:04o}, so its group can read the PSK: "
                      f"run `chmod 600 {IPSEC_CONF}`")
    return Result(cid, Status.OK, f"{IPSEC_CONF} is mode {info.mode:04o} and owned by root")


def _npppd_users(info) -> Result:
    cid = "files.npppd_users"
    if info is None or failed(info):
        return Result(cid, Status.UNKNOWN, f"cannot stat {NPPPD_USERS}: {info}")
    if not info.exists:
        return Result(cid, Status.CRITICAL, f"{NPPPD_USERS} does not exist, so no VPN user can "
                                            "log in: restore it")
    if info.mode & 0o077 or info.uid != 0:
        return Result(cid, Status.WARNING,
                      f"{NPPPD_USERS} is mode {info.mode:04o} owned by {info.owner or info.uid}, "
                      f"so others can read the VPN passwords: run `chown root {NPPPD_USERS}` and "
                      f"`chmod 600 {NPPPD_USERS}`")
    return Result(cid, Status.OK, f"{NPPPD_USERS} is private to root")
