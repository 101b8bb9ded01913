"""IKE judgments: isakmpd's loaded policy, which clients can negotiate phase 1.

Pure functions over parsed records; each returns a small frozen verdict (a
status name of checks.Status, one summary sentence, the values judged) that
the check layer turns into a Result.  Status names, not Status members, so
that this module depends on no other part of checks/.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..commands import IPSEC_CONF
from ..parsers.ipsecctl import IkePhase1
from ..parsers.isakmpd import IsakmpdOptions, has_option

LOAD_POLICY = f"`ipsecctl -nf {IPSEC_CONF}` then `ipsecctl -f {IPSEC_CONF}`"


@dataclass(frozen=True)
class PolicyVerdict:
    """Whether the running isakmpd holds ipsec.conf's passive (road-warrior) rules."""

    status: str                          # OK | WARNING | CRITICAL | UNKNOWN
    summary: str
    isakmpd_running: bool | None
    passive_connections: int | None      # None: isakmpd could not be asked
    missing: tuple[str, ...] = ()        # ipsec.conf's passive rules isakmpd lacks
    repair: bool = False                 # loading ipsec.conf is the fix


def ike_policy_verdict(isakmpd_running: bool | None, options: IsakmpdOptions | None,
                       passive: tuple[str, ...] | str | None,
                       expected: tuple[str, ...] | None = None) -> PolicyVerdict:
    """Judge the answer of `C get [Phase 2]:Passive-Connections`.

    passive: the connection names isakmpd holds (parsers.isakmpd.
    parse_passive_connections), None when no result appeared within the
    timeout, or a string saying why isakmpd could not be asked.  expected:
    the passive connections `ipsecctl -nvf /etc/ipsec.conf` names, when known.

    With `-K` isakmpd starts from its built-in defaults (conf.c
    conf_load_defaults()): after `rcctl restart isakmpd` it has no passive
    connection until `ipsecctl -f` sends them (FACTS.md section 1).  isakmpd
    installs flows and SAs for a passive rule only when a client negotiates,
    so nothing else tells the two states apart.
    """
    if isakmpd_running is False:
        return PolicyVerdict("CRITICAL", "isakmpd is not running, so no client can negotiate "
                             f"IKE: run `rcctl start isakmpd`, then {LOAD_POLICY}",
                             False, None, repair=False)
    if passive is None:
        return PolicyVerdict("UNKNOWN", "isakmpd wrote no answer to `C get [Phase 2]:"
                             "Passive-Connections` within the timeout, so whether it holds "
                             f"the policy of {IPSEC_CONF} is not known", isakmpd_running, None)
    if isinstance(passive, str):
        return PolicyVerdict("UNKNOWN", f"cannot ask isakmpd for its policy: {passive}",
                             isakmpd_running, None)
    if not passive:
        restarted = ("isakmpd runs with -K, which starts it without any policy: "
                     if options is not None and has_option(options, "K") else "")
        return PolicyVerdict("CRITICAL", f"isakmpd holds no passive connection: the IKE "
                             f"policy of {IPSEC_CONF} is not loaded ({restarted}restarted "
                             "without `ipsecctl -f`?), so no client can negotiate: run "
                             f"{LOAD_POLICY}", True, 0, repair=True)
    missing = tuple(name for name in (expected or ()) if name not in passive)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more"
                                          if len(missing) > 3 else "")
        return PolicyVerdict("WARNING", f"isakmpd lacks {len(missing)} passive rule(s) of "
                             f"{IPSEC_CONF} ({shown}): edited but not loaded? run "
                             f"{LOAD_POLICY}", True, len(passive), missing, repair=True)
    return PolicyVerdict("OK", f"isakmpd holds {len(passive)} passive connection(s) from "
                         f"{IPSEC_CONF}", True, len(passive))


# --- Which common clients can negotiate phase 1 ---------------------------------------

@dataclass(frozen=True)
class ClientOffer:
    """One phase-1 transform a client proposes: isakmpd's names, key bits for AES."""

    enc: str
    key_bits: int | None
    hash: str
    group: str


def _offers(*specs: str) -> tuple[ClientOffer, ...]:
    out = []
    for spec in specs:
        enc, hash_, group = spec.split("-")
        bits = int(enc[3:]) if enc.startswith("AES") else None
        out.append(ClientOffer("AES" if bits else enc, bits, hash_, group))
    return tuple(out)


# FACTS.md section 5 (nm-l2tp README, a merge of what Windows 10 and macOS/iOS
# propose; Microsoft KB 325158 for the legacy client).  The source gives the
# Windows 10/11 and Apple offers as ONE merged list, so they are judged as one
# profile: "none of these" is certain for both, "one of these" means at least
# one of them offers it.  No source for Android's L2TP/IPsec client was found:
# it is listed as not judged, never as able to connect.
MODERN = "Windows 10/11, macOS and iOS"
LEGACY = "legacy Windows (L2TP/IPsec, KB 325158)"
NOT_JUDGED = ("Android",)
CLIENT_OFFERS: dict[str, tuple[ClientOffer, ...]] = {
    MODERN: _offers("AES256-SHA2_256-MODP_2048", "AES256-SHA2_256-MODP_1536",
                    "AES256-SHA2_256-MODP_1024", "AES256-SHA-MODP_2048",
                    "AES256-SHA-MODP_1536", "AES256-SHA-MODP_1024", "AES256-SHA-ECP_384",
                    "AES128-SHA-MODP_1024", "AES128-SHA-ECP_256", "3DES-SHA-MODP_2048",
                    "3DES-SHA-MODP_1024"),
    LEGACY: _offers("3DES-SHA-MODP_1024"),
}
# The ipsec.conf(5) words that give isakmpd a transform the client offers
# (formats.md section 3: `main auth hmac-sha1 enc aes group modp2048`).
CLIENT_FIX = {MODERN: "main auth hmac-sha1 enc aes group modp2048",
              LEGACY: "main auth hmac-sha1 enc 3des group modp1024"}


@dataclass(frozen=True)
class ClientVerdict:
    status: str                          # OK | WARNING | CRITICAL | UNKNOWN
    summary: str
    can_connect: tuple[str, ...]
    locked_out: tuple[str, ...]          # documented clients no proposal matches
    not_judged: tuple[str, ...]
    fixes: tuple[str, ...]               # `main ...` words, one per locked-out client
    proposals: int                       # phase-1 transforms offered to any peer


def accepts(proposal: IkePhase1, offer: ClientOffer) -> bool:
    """Whether isakmpd, holding PROPOSAL, accepts the client's OFFER in phase 1.

    ike_phase_1.c attribute_unacceptable() compares each attribute: cipher,
    hash and group must be equal, and the key length within KEY_LENGTH's
    min:max.  PSK is what L2TP/IPsec clients use.
    """
    if proposal.auth_method != "PRE_SHARED" or proposal.exchange != "ID_PROT":
        return False
    if (proposal.enc, proposal.hash, proposal.group) != (offer.enc, offer.hash, offer.group):
        return False
    if offer.key_bits is None:
        return True
    bits = proposal.key_bits()
    return bits is not None and bits[0] <= offer.key_bits <= bits[1]


def client_compatibility(proposals: tuple[IkePhase1, ...]) -> ClientVerdict:
    """Which common clients can negotiate phase 1 with the passive ike rules for any peer.

    A client behind an address no rule names as `peer` gets isakmpd's
    `[Phase 1]:Default` section, whose Transforms list gathers the
    transform of every such rule (ipsecctl sends `C add ...:Transforms`).

    CRITICAL when Windows 10/11, macOS and iOS cannot connect (the default
    MODP_3072 of a rule without `main ... group` is offered by none): that
    host is down for its users, even if a hand-configured Linux client
    could still connect.  The legacy Windows client (Windows 2000/XP
    defaults, KB 325158) is named when locked out but does not fail the
    check: those systems are long out of support, and a host set up for
    current clients is healthy.
    """
    anyone = tuple(p for p in proposals if p.peer is None and p.passive)
    if not anyone:
        return ClientVerdict("CRITICAL", f"{IPSEC_CONF} has no `ike passive` rule for any "
                             "peer, so no road-warrior client can negotiate IKE: add one "
                             f"with `{CLIENT_FIX[MODERN]}`", (), tuple(CLIENT_OFFERS),
                             NOT_JUDGED, (CLIENT_FIX[MODERN],), 0)
    can = tuple(client for client, offers in CLIENT_OFFERS.items()
                if any(accepts(p, o) for p in anyone for o in offers))
    locked = tuple(client for client in CLIENT_OFFERS if client not in can)
    fixes = tuple(CLIENT_FIX[client] for client in locked)
    offered = ", ".join(sorted({f"{p.enc}-{p.hash}-{p.group}" for p in anyone}))
    if MODERN in locked:
        words = " or ".join(f"`{fix}`" for fix in fixes)
        return ClientVerdict("CRITICAL", f"no {MODERN} client can negotiate phase 1: "
                             f"isakmpd offers only {offered}, which none of them proposes "
                             f"(NO_PROPOSAL_CHOSEN); add {words} to the ike rule in "
                             f"{IPSEC_CONF}, then run {LOAD_POLICY}",
                             can, locked, NOT_JUDGED, fixes, len(anyone))
    legacy = (f"; {LEGACY} cannot connect (it needs `{CLIENT_FIX[LEGACY]}`)"
              if LEGACY in locked else f" and {LEGACY}")
    return ClientVerdict("OK", f"phase 1 ({offered}) matches what {MODERN} offer{legacy} "
                         "(Android not judged)", can, locked, NOT_JUDGED, fixes, len(anyone))
