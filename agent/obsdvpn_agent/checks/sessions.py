"""sessions.*: every pppx interface names its user; every user is in npppd-users."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ..commands import NPPPD_CONF, NPPPD_USERS
from ..probes import failed, user_digest
from . import Result, Results, Status, Value, observed_note

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts


def vpn_network(facts: Facts, cfg: Config) -> str:
    """The VPN network the checks judge: npppd.conf's pools when readable, else the
    agent's `[vpn] network`."""
    pools = facts.files.npppd_pools
    covering = None if failed(pools) else pools.covering()
    return cfg.vpn_network if covering is None else str(covering)


def evaluate(facts: Facts, cfg: Config) -> Results:
    yield _descriptions(facts, cfg)
    yield _users(facts)
    yield _pool(facts, cfg)


def _pool(facts: Facts, cfg: Config) -> Result:
    """npppd.conf's pool-address says what the VPN network is; the agent's
    configuration says what it judges NAT for: they must agree."""
    cid = "sessions.pool"
    pools = facts.files.npppd_pools
    configured = ipaddress.ip_network(cfg.vpn_network, strict=False)
    if failed(pools):
        return Result(cid, Status.UNKNOWN, f"cannot read npppd's address pool: {pools}; the "
                                           f"checks use [vpn] network {configured}",
                      {"network": str(configured), "agrees": None})
    covering = pools.covering()
    if covering is None:
        return Result(cid, Status.WARNING, f"{NPPPD_CONF} has no `pool-address` in an ipcp "
                                           "block, so npppd has no address to give a client: "
                                           "add one", {"network": str(configured),
                                                       "agrees": None})
    shown = ", ".join(pools.ranges)
    outside = [n for n in pools.networks if configured.version != 4
               or not ipaddress.IPv4Network(n).subnet_of(ipaddress.IPv4Network(configured))]
    values: dict[str, Value] = {"network": str(covering), "agrees": not outside}
    if outside:
        return Result(cid, Status.WARNING,
                      f"npppd.conf's pool-address ({shown}) is not inside the agent's [vpn] "
                      f"network {configured}; the checks judge NAT for {covering}, what npppd "
                      f"hands out: set `network = \"{covering}\"` under [vpn] in the agent's "
                      "configuration", values)
    return Result(cid, Status.OK, f"npppd hands out {shown}, inside {configured}"
                  + observed_note(facts.files.observed_at, facts.collected_at), values)


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
    digests = facts.files.npppd_user_digests
    if failed(users):
        if digests is None:
            # Skipped by design (npppd-users is root's alone) is still not looked
            # at: UNKNOWN, never OK.
            return Result(cid, Status.UNKNOWN, f"cannot read {NPPPD_USERS}: {users}",
                          {"strangers": None})
        # The unprivileged serve compares with root's last look (names as digests).
        strangers = sorted(name for name in {s.username for s in sessions}
                           if user_digest(name) not in digests)
    else:
        known = set(users)
        strangers = sorted({s.username for s in sessions if s.username not in known})
    if strangers:
        return Result(cid, Status.WARNING,
                      f"connected user(s) {', '.join(strangers[:5])} are not in {NPPPD_USERS} "
                      "(removed while connected?): disconnect them with "
                      "`npppctl clear username NAME`", {"strangers": len(strangers)})
    return Result(cid, Status.OK, f"{len(sessions)} session(s), all users in {NPPPD_USERS}"
                  + observed_note(facts.files.observed_at, facts.collected_at), {"strangers": 0})

