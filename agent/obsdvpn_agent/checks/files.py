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
    problems = []
    if info.uid != 0:
        problems.append(f"owned by {info.owner or info.uid}, not root")
    if info.mode != 0o600:
        problems.append(f"mode {info.mode:04o}, not 0600")
    if not problems:
        return Result(cid, Status.OK, f"{IPSEC_CONF} is mode 0600 and owned by root")
    # ipsecctl refuses a file not owned by root or with group/other bits set
    # (parse.y check_file_secrecy), so ipsec.conf would not load at all.
    return Result(cid, Status.CRITICAL,
                  f"{IPSEC_CONF} is {' and '.join(problems)}, so ipsecctl refuses to load it "
                  f"and the PSK may be readable: run `chown root:wheel {IPSEC_CONF}` and "
                  f"`chmod 600 {IPSEC_CONF}`")


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
