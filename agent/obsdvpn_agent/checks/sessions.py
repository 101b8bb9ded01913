"""sessions.*: every pppx interface names its user; every user is in npppd-users."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands import NPPPD_USERS
from ..probes import failed
from . import Result, Results, Status

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts


def evaluate(facts: Facts, cfg: Config) -> Results:
    yield _descriptions(facts, cfg)
    yield _users(facts)


def _descriptions(facts: Facts, cfg: Config) -> Result:
    cid = "sessions.descriptions"
    if not cfg.ppp_interface.startswith("pppx"):
        return Result(cid, Status.OK, f"sessions share {cfg.ppp_interface}; users come from "
                                      "`npppctl session all`")
    interfaces = facts.ifconfig.pppx
    if failed(interfaces):
        return Result(cid, Status.UNKNOWN, f"cannot list pppx interfaces: {interfaces}")
    bare = [i.name for i in interfaces if not i.description]
    values = {"interfaces": len(interfaces), "without_description": len(bare)}
    if bare:
        return Result(cid, Status.WARNING,
                      f"{len(bare)} pppx interface(s) carry no user description "
                      f"({', '.join(bare[:5])}); npppd names them only for sessions that "
                      "start while net.pipex.enable=1: make sure it is 1 (and persisted), "
                      "then have those users reconnect", values)
    return Result(cid, Status.OK, f"all {len(interfaces)} pppx interface(s) name their user",
                  values)


def _users(facts: Facts) -> Result:
    cid = "sessions.users"
    sessions, users = facts.npppctl.sessions, facts.files.npppd_users
    if failed(sessions):
        return Result(cid, Status.UNKNOWN, f"cannot list sessions: {sessions}")
    if not sessions:
        return Result(cid, Status.OK, "no session is connected", {"strangers": 0})
    if failed(users):
        # Skipped by design (npppd-users is root's alone) is still not looked at:
        # UNKNOWN, never OK.
        return Result(cid, Status.UNKNOWN, f"cannot read {NPPPD_USERS}: {users}",
                      {"strangers": None})
    known = set(users)
    strangers = sorted({s.username for s in sessions if s.username not in known})
    if strangers:
        return Result(cid, Status.WARNING,
                      f"connected user(s) {', '.join(strangers[:5])} are not in {NPPPD_USERS} "
                      "(removed while connected?): disconnect them with "
                      "`npppctl clear username NAME`", {"strangers": len(strangers)})
    return Result(cid, Status.OK, f"{len(sessions)} session(s), all users in {NPPPD_USERS}",
                  {"strangers": 0})
