"""ipsec.*: every L2TP session rides inside an IPsec SA; what we can know of isakmpd."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands import IPSEC_CONF
from ..probes import failed
from . import Result, Results, Status, Value, observed_note
from .daemons import load_policy_action, running, running_isakmpd, start_actions
from .ike import client_compatibility, ike_policy_verdict

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts


def evaluate(facts: Facts, cfg: Config) -> Results:
    yield _sessions_sa(facts)
    yield _ike_rules(facts, cfg)
    yield _clients(facts)


def _sessions_sa(facts: Facts) -> Result:
    cid = "ipsec.sessions_sa"
    sessions, sa = facts.npppctl.sessions, facts.ipsec.sa
    if failed(sessions):
        return Result(cid, Status.UNKNOWN, f"cannot list sessions: {sessions}")
    l2tp = [s for s in sessions if s.tunnel_protocol == "L2TP"]
    if not l2tp:
        return Result(cid, Status.OK, "no L2TP session is connected",
                      {"l2tp_sessions": 0, "unprotected": 0})
    if failed(sa):
        return Result(cid, Status.UNKNOWN, f"cannot read the IPsec SAs: {sa}",
                      {"l2tp_sessions": len(l2tp), "unprotected": None})
    # Only an established SA each way, with a flow for the peer, protects a
    # session: a larval one (SADB_GETSPI, no transforms yet) protects nothing.
    protected = sa.protected_peers()
    bare = [s for s in l2tp if s.peer_host not in protected]
    values = {"l2tp_sessions": len(l2tp), "unprotected": len(bare)}
    if bare:
        who = ", ".join(f"{s.username} from {s.peer_host}" for s in bare[:5])
        more = f" and {len(bare) - 5} more" if len(bare) > 5 else ""
        return Result(cid, Status.CRITICAL,
                      f"{len(bare)} L2TP session(s) have no established IPsec SA, so they run "
                      f"in clear text ({who}{more}): check `ipsecctl -sa` and pf's ESP/UDP "
                      "500/4500 rules, then disconnect them with `npppctl clear`", values)
    return Result(cid, Status.OK, f"all {len(l2tp)} L2TP session(s) are protected by an IPsec SA",
                  values)


def _ike_rules(facts: Facts, cfg: Config) -> Result:
    """isakmpd holds ipsec.conf's passive rules: the one thing `rcctl restart
    isakmpd` without `ipsecctl -f` loses, and nothing but the FIFO shows."""
    cid = "ipsec.ike_rules"
    index = cfg.daemons.index("isakmpd")
    state = running(facts, "isakmpd")
    ike = facts.isakmpd
    passive: tuple[str, ...] | str = (f"{ike.passive}" if failed(ike.passive)
                                      else ike.passive)
    expected = (None if failed(ike.proposals)
                else tuple(p.connection for p in ike.proposals if p.passive))
    live = running_isakmpd(facts)
    v = ike_policy_verdict(state, None if live is None else live[1], passive, expected)
    values: dict[str, Value] = {"passive_connections": v.passive_connections,
                                "missing": len(v.missing), "observed_at": ike.observed_at}
    status = Status[v.status]
    summary = v.summary + observed_note(ike.observed_at, facts.collected_at)
    if state is False:
        return Result(cid, status, summary, values, start_actions(cid, "isakmpd", index))
    if v.repair:
        return Result(cid, status, summary, values, (load_policy_action(cid, index),))
    return Result(cid, status, summary, values)


def _clients(facts: Facts) -> Result:
    """Which common clients can negotiate phase 1 with ipsec.conf's ike rules."""
    cid = "ipsec.clients"
    ike = facts.isakmpd
    if failed(ike.proposals):
        return Result(cid, Status.UNKNOWN, "cannot tell which clients can negotiate IKE: "
                                           f"{ike.proposals}")
    v = client_compatibility(ike.proposals)
    values: dict[str, Value] = {"can_connect": len(v.can_connect),
                                "locked_out": len(v.locked_out), "proposals": v.proposals}
    return Result(cid, Status[v.status], v.summary + observed_note(ike.observed_at,
                                                                    facts.collected_at),
                  values, repair_note="" if v.status == "OK" else
                  f"the fix is an edit of {IPSEC_CONF}, which repair never makes")
