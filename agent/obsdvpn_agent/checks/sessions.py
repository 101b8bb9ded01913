"""sessions.*: every pppx interface names its user; every user is in npppd-users."""

from __future__ import annotations

from ..commands import NPPPD_USERS
from ..probes import failed
from . import Result, Status


def evaluate(facts, cfg):
    yield _descriptions(facts, cfg)
    yield _users(facts)


def _descriptions(facts, cfg) -> Result:
    cid = "sessions.descriptions"
    if not cfg.ppp_interface.startswith("pppx"):
        return Result(cid, Status.OK, f"sessions share {cfg.ppp_interface}; users come from "
                                      "`npppctl session all`")
    if failed(facts.interfaces):
        return Result(cid, Status.UNKNOWN, f"cannot list pppx interfaces: {facts.interfaces}")
    bare = [i.name for i in facts.interfaces if not i.description]
    if bare:
        return Result(cid, Status.WARNING,
                      f"{len(bare)} pppx interface(s) carry no user description "
                      f"({', '.join(bare[:5])}); npppd names them only for sessions that "
                      "start while net.pipex.enable=1: make sure it is 1 (and persisted), "
                      "then have those users reconnect")
    return Result(cid, Status.OK, f"all {len(facts.interfaces)} pppx interface(s) name their user")


def _users(facts) -> Result:
    cid = "sessions.users"
    if failed(facts.sessions):
        return Result(cid, Status.UNKNOWN, f"cannot list sessions: {facts.sessions}")
    if not facts.sessions:
        return Result(cid, Status.OK, "no session is connected")
    if failed(facts.npppd_users):
        if facts.npppd_users.kind == "skipped":
            return Result(cid, Status.OK, f"not checked here: {facts.npppd_users}")
        return Result(cid, Status.UNKNOWN, f"cannot read {NPPPD_USERS}: {facts.npppd_users}")
    known = set(facts.npppd_users)
    strangers = sorted({s.username for s in facts.sessions if s.username not in known})
    if strangers:
        return Result(cid, Status.WARNING,
                      f"connected user(s) {', '.join(strangers[:5])} are not in {NPPPD_USERS} "
                      "(removed while connected?): disconnect them with "
                      "`npppctl clear username NAME`")
    return Result(cid, Status.OK, f"{len(facts.sessions)} session(s), all users in {NPPPD_USERS}")
