"""ipsec.*: every L2TP session rides inside an IPsec SA; what we can know of isakmpd."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands import IPSEC_CONF
from ..probes import failed
from . import Result, Results, Status
from .daemons import running, start_actions

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts


def evaluate(facts: Facts, cfg: Config) -> Results:
    yield _sessions_sa(facts)
    yield _ike_rules(facts, cfg)


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
    protected = sa.peers_with_sa()
    bare = [s for s in l2tp if s.peer_host not in protected]
    values = {"l2tp_sessions": len(l2tp), "unprotected": len(bare)}
    if bare:
        who = ", ".join(f"{s.username} from {s.peer_host}" for s in bare[:5])
        more = f" and {len(bare) - 5} more" if len(bare) > 5 else ""
        return Result(cid, Status.CRITICAL,
                      f"{len(bare)} L2TP session(s) have no IPsec SA, so they run in clear text "
                      f"({who}{more}): check `ipsecctl -sa` and pf's ESP/UDP 500/4500 rules, then "
                      "disconnect them with `npppctl clear`", values)
    return Result(cid, Status.OK, f"all {len(l2tp)} L2TP session(s) are protected by an IPsec SA",
                  values)


def _ike_rules(facts: Facts, cfg: Config) -> Result:
    cid = "ipsec.ike_rules"
    isakmpd = running(facts, "isakmpd")
    sa = facts.ipsec.sa
    if isakmpd is False:
        index = cfg.daemons.index("isakmpd")
        return Result(cid, Status.CRITICAL, "isakmpd is not running, so no client can negotiate: "
                                            "run `rcctl start isakmpd` then "
                                            f"`ipsecctl -f {IPSEC_CONF}`",
                      actions=start_actions(cid, "isakmpd", index))
    if failed(sa):
        return Result(cid, Status.UNKNOWN, f"cannot read the IPsec flows: {sa}")
    if isakmpd is None and not sa.sas:
        return Result(cid, Status.UNKNOWN, "cannot tell whether isakmpd runs, and no SA shows "
                                           "that it negotiates")
    if sa.sas:
        return Result(cid, Status.OK, f"isakmpd has negotiated {len(sa.sas)} SA(s) "
                                      f"with {len(sa.remote_peers())} peer(s)")
    # With `ike passive ... transport` rules isakmpd installs flows and SAs only
    # when a client negotiates.  The only read-out of its loaded policy is the
    # FIFO report (`echo R > /var/run/isakmpd.fifo`), which is a write to the
    # daemon, so the agent does not do it: say what is and is not known.
    return Result(cid, Status.OK,
                  "no client is negotiated, so whether isakmpd holds ipsec.conf's ike rules "
                  "cannot be read without writing to its FIFO; if clients cannot connect, run "
                  f"`ipsecctl -f {IPSEC_CONF}`")
