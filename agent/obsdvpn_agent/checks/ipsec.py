"""ipsec.*: every L2TP session rides inside an IPsec SA; what we can know of isakmpd."""

from __future__ import annotations

from ..probes import failed
from . import Result, Status
from .daemons import running


def evaluate(facts, cfg):
    yield _sessions_sa(facts)
    yield _ike_rules(facts, cfg)


def _sessions_sa(facts) -> Result:
    cid = "ipsec.sessions_sa"
    if failed(facts.sessions):
        return Result(cid, Status.UNKNOWN, f"cannot list sessions: {facts.sessions}")
    l2tp = [s for s in facts.sessions if s.tunnel_protocol == "L2TP"]
    if not l2tp:
        return Result(cid, Status.OK, "no L2TP session is connected")
    if failed(facts.ipsec):
        return Result(cid, Status.UNKNOWN, f"cannot read the IPsec SAs: {facts.ipsec}")
    protected = facts.ipsec.peers_with_sa()
    bare = [s for s in l2tp if s.peer_host not in protected]
    if bare:
        who = ", ".join(f"{s.username} from {s.peer_host}" for s in bare[:5])
        more = f" and {len(bare) - 5} more" if len(bare) > 5 else ""
        return Result(cid, Status.CRITICAL,
                      f"{len(bare)} L2TP session(s) have no IPsec SA, so they run in clear text "
                      f"({who}{more}): check `ipsecctl -sa` and pf's ESP/UDP 500/4500 rules, then "
                      "disconnect them with `npppctl clear`")
    return Result(cid, Status.OK, f"all {len(l2tp)} L2TP session(s) are protected by an IPsec SA")


def _ike_rules(facts, cfg) -> Result:
    cid = "ipsec.ike_rules"
    isakmpd = running(facts, "isakmpd")
    if isakmpd is False:
        return Result(cid, Status.CRITICAL, "isakmpd is not running, so no client can negotiate: "
                                            "run `rcctl start isakmpd` then "
                                            "`ipsecctl -f /etc/ipsec.conf`")
    if failed(facts.ipsec):
        return Result(cid, Status.UNKNOWN, f"cannot read the IPsec flows: {facts.ipsec}")
    if isakmpd is None and not facts.ipsec.sas:
        return Result(cid, Status.UNKNOWN, "cannot tell whether isakmpd runs, and no SA shows "
                                           "that it negotiates")
    if facts.ipsec.sas:
        return Result(cid, Status.OK, f"isakmpd has negotiated {len(facts.ipsec.sas)} SA(s) "
                                      f"with {len(facts.ipsec.remote_peers())} peer(s)")
    # With `ike passive ... transport` rules isakmpd installs flows and SAs only
    # when a client negotiates.  The only read-out of its loaded policy is the
    # FIFO report (`echo R > /var/run/isakmpd.fifo`), which is a write to the
    # daemon, so the agent does not do it: say what is and is not known.
    return Result(cid, Status.OK,
                  "no client is negotiated, so whether isakmpd holds ipsec.conf's ike rules "
                  "cannot be read without writing to its FIFO; if clients cannot connect, run "
                  "`ipsecctl -f /etc/ipsec.conf`")
