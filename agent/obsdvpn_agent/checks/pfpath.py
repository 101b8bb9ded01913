"""Would pf let a VPN client through?  Each packet a connection needs, as pf decides it.

A client of an L2TP/IPsec host needs six kinds of packets to pass pf:

    ike      UDP 500 (IKE) in on the egress interface, to its address
    nat-t    UDP 4500 (IKE and ESP behind NAT) in on egress, to its address
    esp      ESP in on egress, to its address
    l2tp     UDP 1701 (L2TP, decapsulated) in on enc0
    ppp-in   the VPN network's traffic in on the ppp interface (pppx or pppac)
    nat-out  the VPN network's traffic out on egress, translated by nat-to
             (both represented by a client's HTTPS connection, TCP 443, to an
             internet host whose address is not known)

evaluate_path() runs each through the loaded ruleset (parsers.pfctl.parse_rule_tree
of `pfctl -a '*' -sr`) the way pf(4) evaluates it, as pf.conf(5) describes:
the last matching rule decides unless a matching rule is `quick`; `match`
rules never decide (their nat-to applies); an `anchor` rule whose own criteria
match evaluates its rules in place, and a `quick` rule inside ends the whole
evaluation; with no deciding rule the packet passes; an interface `set skip`
marked (`pfctl -sI -v`) is not filtered at all.  Interface names match the
interface itself or any group it is in (pf_if.c rev 1.112 pfi_kif_match()).

Some criteria cannot be decided from the outside: the client's own address
and ports, a table's contents, a tag, an `on rdomain`.  Such a rule "matches
some packets of the class": evaluation follows both branches, and the class
gets a definite answer only if every branch ends the same way; otherwise it is
UNKNOWN with the rule that split it.  Rules that change where a packet goes
(route-to, rdr-to, divert-to, af-to, rtable, once) make the class UNKNOWN when
they apply.  Never a guess: a false OK is the worst defect.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from ..parsers.ifconfig import Interface
from ..parsers.pfctl import PROTOCOL_NUMBERS, SERVICE_PORTS, PfNode, PfRule, PfRuleTree

Decision = Literal["pass", "block", "unknown"]
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network

PACKETS = ("ike", "nat-t", "esp", "l2tp", "ppp-in", "nat-out")
DEFAULT_PASS = "no rule matched (pf passes by default)"


@dataclass(frozen=True)
class EgressInterface:
    """The interface in group `egress` (the default route's), from `ifconfig egress`."""

    name: str                         # 'vio0'
    groups: tuple[str, ...]           # as ifconfig prints them ('egress', ...); 'all' implied
    addresses: tuple[str, ...]        # its inet addresses, '192.0.2.1'


@dataclass(frozen=True)
class PacketVerdict:
    """pf's decision for one packet class of a client's connection."""

    packet: str                       # stable id, one of PACKETS
    decision: Decision
    rule: str                         # the deciding rule as printed, or DEFAULT_PASS, or ""
    reason: str                       # one sentence: what the packet is and why


def egress_interfaces(interfaces: Iterable[Interface]) -> tuple[EgressInterface, ...]:
    """`ifconfig egress` (parsers.ifconfig.parse_ifconfig) -> the egress interfaces.

    ifconfig.c status() leaves group `all` out of `groups:`; every interface
    is in it (sys/net/if.c if_attach_common() adds IFG_ALL).
    """
    return tuple(EgressInterface(i.name, i.groups, tuple(a.address for a in i.inet))
                 for i in interfaces)


# --- packets ---------------------------------------------------------------

@dataclass(frozen=True)
class _Packet:
    id: str
    what: str
    direction: str                    # 'in' | 'out'
    ifname: str | None                # None: a member of `groups` whose unit is not known
    groups: frozenset[str]
    proto: int | None                 # None: any protocol the clients send
    src: tuple[_Net, ...] | None      # None: a client's or an internet host's address
    dst: tuple[_Net, ...] | None
    dst_port: int | None              # None: not known (any port)
    local: bool                       # to this host (a socket's user is known) or forwarded
    needs_nat: bool = False
    # An unknown destination is known to be outside these (an internet host
    # is neither in the VPN network nor this host's address).
    dst_outside: tuple[_Net, ...] = ()


_UDP, _TCP, _ESP = 17, 6, 50


def _interface_of(name: str) -> tuple[str | None, frozenset[str]]:
    """A configured interface: 'pppx' (a group: unit unknown) or 'pppac0'."""
    if name[-1:].isdigit():
        return name, frozenset({"all"})
    return None, frozenset({name, "all"})


def _packets(egress: EgressInterface | None, vpn_network: str,
             ppp_interface: str) -> list[tuple[_Packet | None, str]]:
    vpn = ipaddress.ip_network(vpn_network, strict=False)
    out: list[tuple[_Packet | None, str]] = []
    if egress is not None and egress.addresses:
        eg_groups = frozenset({*egress.groups, "egress", "all"})
        addrs = tuple(ipaddress.ip_network(a) for a in egress.addresses)
        shown = ", ".join(egress.addresses)
        for pid, what, proto, port in (("ike", "IKE (UDP 500)", _UDP, 500),
                                       ("nat-t", "NAT-T (UDP 4500)", _UDP, 4500),
                                       ("esp", "ESP", _ESP, None)):
            out.append((_Packet(pid, f"{what} in on {egress.name} to {shown}", "in",
                                egress.name, eg_groups, proto, None, addrs, port, True), pid))
        l2tp_dst: tuple[_Net, ...] | None = addrs
    else:
        for pid in ("ike", "nat-t", "esp"):
            out.append((None, pid))
        l2tp_dst = None
    out.append((_Packet("l2tp", "L2TP (UDP 1701) in on enc0", "in", "enc0",
                        frozenset({"enc", "all"}), _UDP, None, l2tp_dst, 1701, True), "l2tp"))
    ppp_name, ppp_groups = _interface_of(ppp_interface)
    # A client's traffic through the tunnel is represented by one HTTPS
    # connection (TCP 443) to an internet host: rules that only concern other
    # ports (the stock X11 block) do not cut the path, and the host's address
    # stays unknown, so a rule on destinations splits the class.
    outside = (vpn, *(ipaddress.ip_network(a) for a in (egress.addresses if egress else ())))
    out.append((_Packet("ppp-in", f"a client's connection from {vpn} (TCP 443) in on "
                        f"{ppp_interface}", "in", ppp_name, ppp_groups, _TCP, (vpn,), None,
                        443, False, dst_outside=outside), "ppp-in"))
    if egress is not None:
        out.append((_Packet("nat-out", f"a client's connection from {vpn} (TCP 443) out on "
                            f"{egress.name}", "out", egress.name,
                            frozenset({*egress.groups, "egress", "all"}), _TCP, (vpn,), None,
                            443, False, needs_nat=True, dst_outside=outside), "nat-out"))
    else:
        out.append((None, "nat-out"))
    return out


# --- matching one rule: YES, NO or SOME (some packets of the class) ---------

YES, NO, SOME = "yes", "no", "some"


@dataclass(frozen=True)
class _Match:
    result: str
    why: str = ""                     # for SOME: what cannot be told
    effects: tuple[str, ...] = ()     # applies and changes the packet's path: unknown
    nat: bool = False                 # has nat-to


def _all(results: list[tuple[str, str]]) -> tuple[str, str]:
    """AND of criteria: NO wins, then SOME (with its reason), else YES."""
    if any(r == NO for r, _ in results):
        return NO, ""
    some = [w for r, w in results if r == SOME]
    return (SOME, "; ".join(some)) if some else (YES, "")


def _negate(result: str, negated: bool) -> str:
    if not negated or result == SOME:
        return result
    return NO if result == YES else YES


def _match_interface(rule: PfRule, p: _Packet) -> tuple[str, str]:
    name = rule.interface
    if name is None:
        return YES, ""
    # `any`: pf_if.c pfi_kif_alloc() PFI_IFLAG_ANY, every interface but loopback.
    if name == "any" or name == p.ifname or name in p.groups:
        res = YES
    elif p.ifname is None and _unit_of(name, p.groups):
        return SOME, f"`on {name}` is one session's interface, not every client's"
    elif p.ifname is not None and name == p.ifname.rstrip("0123456789") and name not in p.groups:
        return SOME, f"whether {p.ifname} is in an interface group {name} is not known"
    else:
        res = NO
    return _negate(res, rule.interface_negated), ""


def _addr_set(text: str) -> tuple[_Net, ...] | None:
    """A printed address as networks; None when it is not a literal address."""
    try:
        if " - " in text:
            first, last = (ipaddress.ip_address(a) for a in text.split(" - "))
            return tuple(ipaddress.summarize_address_range(first, last))
        return (ipaddress.ip_network(text.split("%")[0], strict=False),)
    except (ValueError, TypeError):
        return None


def _inside(packet: tuple[_Net, ...], rule: tuple[_Net, ...]) -> str:
    def covered(n: _Net) -> bool:
        return any(n.version == r.version and n.subnet_of(r) for r in rule)  # type: ignore[arg-type]

    def touches(n: _Net) -> bool:
        return any(n.version == r.version and n.overlaps(r) for r in rule)

    if all(covered(n) for n in packet):
        return YES
    if not any(touches(n) for n in packet):
        return NO
    return SOME


def _match_address(printed: str, addrs: tuple[_Net, ...] | None, p: _Packet,
                   egress: EgressInterface | None, side: str) -> tuple[str, str]:
    negated = printed.startswith("! ")
    text = printed[2:] if negated else printed
    if text == "any":
        return _negate(YES, negated), ""
    if text.startswith("<"):
        return SOME, f"the contents of table {text} are not known here"
    if text in ("self", "(self)"):
        # Every local address (pf_if.c pfi_dynaddr_setup(): `self` is group `all`):
        # the egress address a client connects to is one; a client's own address
        # and an internet host are not.
        local = side == "to" and p.local
        return _negate(YES if local else NO, negated), ""
    if addrs is None:
        literal = _addr_set(text)
        outside = p.dst_outside if side == "to" else ()
        if literal is not None and outside and _inside(literal, outside) == YES:
            return _negate(NO, negated), ""
        who = "client" if side == "from" else "destination"
        return SOME, f"`{side} {printed}` depends on the {who}'s address"
    if text.startswith("(") and text.endswith(")"):
        name = text[1:-1]
        if egress is not None and name in (egress.name, "egress") and egress.addresses:
            rule_addrs = tuple(ipaddress.ip_network(a) for a in egress.addresses)
            return _negate(_inside(addrs, rule_addrs), negated), ""
        return SOME, f"the addresses of `{text}` are not known here"
    literal = _addr_set(text)
    if literal is None:             # <table>, self, no-route, urpf-failed, route "label"
        return SOME, f"`{side} {printed}` cannot be resolved from the ruleset"
    return _negate(_inside(addrs, literal), negated), ""


_PORT = re.compile(r"[0-9]{1,5}")


def _match_port(spec: str | None, port: int | None, side: str) -> tuple[str, str]:
    if spec is None:
        return YES, ""
    if port is None:
        return SOME, f"`{side} port {spec}` depends on the port the client uses"
    parts = [str(SERVICE_PORTS.get(x, x)) for x in spec.split()]
    if len(parts) == 1 and ":" in parts[0]:
        parts = [parts[0].split(":")[0], ":", parts[0].split(":")[1]]
    nums = [x for x in parts if x not in ("!=", "<", "<=", ">", ">=", "><", "<>", ":")]
    if not all(_PORT.fullmatch(x) for x in nums):
        return SOME, f"port `{spec}` is not a number"
    if len(parts) == 1:
        ok = port == int(parts[0])
    elif len(parts) == 2:
        value = int(parts[1])
        ok = {"!=": port != value, "<": port < value, "<=": port <= value,
              ">": port > value, ">=": port >= value}[parts[0]]
    else:
        low, op, high = int(parts[0]), parts[1], int(parts[2])
        # pf.c pf_match(): `:` inclusive, `><` exclusive, `<>` outside.
        ok = {":": low <= port <= high, "><": low < port < high,
              "<>": port < low or port > high}[op]
    return (YES if ok else NO), ""


def _match_proto(rule: PfRule, p: _Packet) -> tuple[str, str]:
    if rule.proto is None:
        return YES, ""
    number = int(rule.proto) if rule.proto.isascii() and rule.proto.isdigit() \
        else PROTOCOL_NUMBERS.get(rule.proto)
    if number is None:
        return SOME, f"protocol {rule.proto} is not known here"
    if p.proto is None:
        return SOME, f"`proto {rule.proto}` matches only some of the clients' traffic"
    return (YES if number == p.proto else NO), ""


# Options that neither select packets nor change their path.
_PLAIN = frozenset({"allow-opts", "keep", "modulate", "synproxy", "state", "no", "log"})
_WITH_VALUE = frozenset({"label", "tag", "set", "scrub", "flags"})
_CRITERIA = frozenset({"prio", "tos", "probability", "received-on", "!received-on",
                       "icmp-type", "icmp6-type", "code", "fragment", "tagged"})
_PATH = frozenset({"route-to", "reply-to", "dup-to", "rdr-to", "af-to", "divert-to",
                   "divert-reply", "divert-packet", "rtable", "once", "max-pkt-rate"})
_POOL_END = frozenset({"route-to", "reply-to", "dup-to"})


def _match_options(rule: PfRule, p: _Packet) -> _Match:
    tokens = rule.options
    crit: list[tuple[str, str]] = []
    effects: list[str] = []
    nat = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _PLAIN or tok.startswith("("):
            i += 1
        elif tok in _WITH_VALUE:
            value = tokens[i + 1] if i + 1 < len(tokens) else ""
            if tok == "flags" and value not in ("S/SA", "any") and p.proto in (None, _TCP):
                crit.append((SOME, f"`flags {value}` matches only some TCP packets"))
            i += 2
        elif tok in ("user", "group"):
            j = i + 1
            while j < len(tokens) and (tokens[j] in ("=", "!=", "<", "<=", ">", ">=", "><",
                                                     "<>") or _PORT.fullmatch(tokens[j])
                                       or tokens[j] == "unknown"
                                       or re.fullmatch(r"[0-9]+:[0-9]+", tokens[j])):
                j += 1
            spec = tokens[i + 1:j]
            if not p.local and len(spec) == 2 and spec[0] == "=":
                # pf.conf(5) `user`: for forwarded connections the user and group are
                # unknown; print_ugid() prints that value as `unknown`.
                crit.append((YES if spec[1] == "unknown" else NO, ""))
            else:
                crit.append((SOME, f"`{tok} {' '.join(spec)}` depends on a socket's owner"))
            i = j
        elif tok == "nat-to":
            nat = True
            i += 1
            while i < len(tokens) and tokens[i] not in _POOL_END:
                i += 1
        elif tok in _PATH:
            if tok == "rdr-to" and p.direction == "out":
                pass                # rdr-to applies to inbound packets only
            else:
                effects.append(f"`{tok}` changes where the packet goes")
            i += 1
            while i < len(tokens) and tokens[i] not in _POOL_END and tokens[i] not in _PATH:
                i += 1
        elif tok == "!":            # print_rule(): ` !` before ` tagged NAME`
            i += 1
        elif tok in _CRITERIA:
            shown = " ".join(tokens[i:i + 2])
            crit.append((SOME, f"`{shown}` cannot be decided from the ruleset"))
            i += 2 if tok not in ("fragment",) else 1
        else:
            crit.append((SOME, f"option `{tok}` is not understood here"))
            i += 1
    result, why = _all(crit)
    return _Match(result, why, tuple(effects), nat)


def _match_rule(rule: PfRule, p: _Packet, egress: EgressInterface | None) -> _Match:
    crit: list[tuple[str, str]] = []
    crit.append((YES if rule.direction in (None, p.direction) else NO, ""))
    crit.append(_match_interface(rule, p))
    if rule.on_rdomain is not None:
        crit.append((SOME, f"`on rdomain {rule.on_rdomain}` is not known here"))
    version = 6 if p.src is not None and p.src[0].version == 6 else 4
    if rule.af is not None:
        crit.append((YES if rule.af == ("inet6" if version == 6 else "inet") else NO, ""))
    crit.append(_match_proto(rule, p))
    crit.append(_match_address(rule.src, p.src, p, egress, "from"))
    crit.append(_match_port(rule.src_port, None, "from"))
    crit.append(_match_address(rule.dst, p.dst, p, egress, "to"))
    crit.append(_match_port(rule.dst_port, p.dst_port, "to"))
    if rule.os is not None:
        crit.append((SOME, f"`os {rule.os}` depends on the client"))
    result, why = _all(crit)
    if result == NO:
        return _Match(NO)
    opts = _match_options(rule, p)
    result, why2 = _all([(result, why), (opts.result, opts.why)])
    return _Match(result, why2, opts.effects, opts.nat)


# --- evaluation --------------------------------------------------------------

@dataclass(frozen=True)
class _Outcome:
    rule: PfRule | None               # the last deciding rule so far (None: default pass)
    path: str = ""                    # anchor path of that rule
    match_nat: bool = False           # a matching `match ... nat-to` applies
    match_unknown: str = ""           # a matching `match` rule does what is not modelled
    rule_unknown: str = ""            # the deciding rule does what is not modelled


@dataclass
class _State:
    alive: set[_Outcome] = field(default_factory=set)
    done: set[_Outcome] = field(default_factory=set)
    splits: list[str] = field(default_factory=list)


def _shown(rule: PfRule, path: str) -> str:
    return f"{rule.text} (in anchor \"{path}\")" if path else rule.text


def _walk(nodes: tuple[PfNode, ...], path: str, st: _State, p: _Packet,
          egress: EgressInterface | None) -> str:
    """Evaluate NODES in order on ST; YES, SOME or NO: did packets match a rule in them?"""
    matched = NO
    for node in nodes:
        if not st.alive:
            break
        rule = node.rule
        m = _match_rule(rule, p, egress)
        if m.result == NO:
            continue
        matched = YES if YES in (matched, m.result) else SOME
        if m.result == SOME:
            st.splits.append(f"{_shown(rule, path)}: {m.why}")
        if rule.action == "anchor":
            if node.children is None:
                opaque = {replace(o, rule=rule, path=path,
                                  rule_unknown=f"the rules of anchor {rule.anchor_name!r} "
                                               "were not printed (read them with "
                                               "pfctl -a '*' -sr)")
                          for o in st.alive}
                st.alive = opaque if m.result == YES else st.alive | opaque
                continue
            # The packets that enter the anchor: all of them, or a branch of them.
            inside = st if m.result == YES else _State(set(st.alive), set(), st.splits)
            inner = _walk(node.children, rule.anchor_path or "", inside, p, egress)
            if rule.quick and inner != NO:
                # pf.conf(5): a quick anchor ends evaluation once a rule inside matched;
                # when that rule matched only some packets, the others go on too.
                inside.done |= inside.alive
                if inner == YES:
                    inside.alive = set()
            if inside is not st:
                st.alive |= inside.alive
                st.done |= inside.done
            continue
        if rule.action == "match":
            if m.effects or rule.quick:
                why = "; ".join(m.effects) or "`match quick` is not modelled"
                hit = {replace(o, match_unknown=f"{_shown(rule, path)}: {why}")
                       for o in st.alive}
                st.alive = hit if m.result == YES else st.alive | hit
            elif m.nat and p.needs_nat:
                hit = {replace(o, match_nat=True) for o in st.alive}
                st.alive = hit if m.result == YES else st.alive | hit
            continue
        # pass or block: this rule is now the last match
        why = "; ".join(m.effects)
        decided = {replace(o, rule=rule, path=path,
                           rule_unknown=f"{_shown(rule, path)}: {why}" if why else "")
                   for o in st.alive}
        if rule.quick:
            st.done |= decided
            if m.result == YES:
                st.alive = set()
        else:
            st.alive = decided if m.result == YES else st.alive | decided
    return matched


def _end(o: _Outcome, p: _Packet) -> tuple[Decision, str, str]:
    """(decision, rule shown, reason) of one branch."""
    if o.match_unknown or o.rule_unknown:
        return "unknown", "", o.rule_unknown or o.match_unknown
    if o.rule is None:
        decision: Decision = "pass"
        shown, why = DEFAULT_PASS, DEFAULT_PASS
    else:
        decision = "pass" if o.rule.action == "pass" else "block"
        shown = _shown(o.rule, o.path)
        why = f"{'passed' if decision == 'pass' else 'blocked'} by `{shown}`"
    if decision == "pass" and p.needs_nat:
        rule_nat = o.rule is not None and any(t == "nat-to" for t in o.rule.options)
        if not (rule_nat or o.match_nat):
            return "block", shown, (f"{why}, but no nat-to rule translates it, so the "
                                    "clients' replies never come back")
    return decision, shown, why


def _unit_of(name: str, groups: frozenset[str]) -> bool:
    """Whether NAME is one unit of a driver group (pppx3 of pppx): one session's
    interface, when the packet stands for every client's."""
    return any(re.fullmatch(re.escape(g) + "[0-9]+", name) for g in groups if g != "all")


def _evaluate(rules: PfRuleTree, p: _Packet, skipped: frozenset[str],
              egress: EgressInterface | None) -> PacketVerdict:
    names = {p.ifname} if p.ifname else set()
    hit = sorted((names | p.groups) & skipped)
    partial = [s for s in skipped if p.ifname is None and _unit_of(s, p.groups)]
    if hit:
        where = p.ifname or next(g for g in sorted(p.groups) if g != "all")
        if p.needs_nat:
            return PacketVerdict(p.id, "block", "", (
                f"{p.what}: interface {hit[0]} is skipped (set skip), so pf neither filters "
                f"nor translates it: no nat-to for the clients"))
        return PacketVerdict(p.id, "pass", "", f"{p.what}: interface {where} is skipped "
                                               f"(set skip on {hit[0]})")
    st = _State(alive={_Outcome(None)})
    _walk(rules.rules, "", st, p, egress)
    ends = {_end(o, p) for o in st.done | st.alive}
    decisions = {d for d, _, _ in ends}
    if partial and decisions != {"pass"}:
        return PacketVerdict(p.id, "unknown", "", (
            f"{p.what}: {', '.join(sorted(partial))} is skipped but other sessions' "
            "interfaces are filtered"))
    if len(decisions) == 1 and "unknown" not in decisions:
        decision = decisions.pop()
        if len(ends) == 1:
            _, shown, why = ends.pop()
            return PacketVerdict(p.id, decision, shown, f"{p.what}: {why}")
        shown = " | ".join(sorted({s for _, s, _ in ends}))
        return PacketVerdict(p.id, decision, shown, (
            f"{p.what}: {'passed' if decision == 'pass' else 'blocked'} whichever rule "
            f"applies ({shown})"))
    unknowns = sorted({why for d, _, why in ends if d == "unknown"})
    splits = list(dict.fromkeys(st.splits))
    reason = "; ".join(unknowns + splits[:3]) or "the rules decide differently for some packets"
    return PacketVerdict(p.id, "unknown", "", f"{p.what}: cannot tell: {reason}")


def evaluate_path(rules: PfRuleTree, skipped: frozenset[str], egress: EgressInterface | None,
                  vpn_network: str, ppp_interface: str) -> tuple[PacketVerdict, ...]:
    """pf's verdict for each packet class a client's connection needs, in PACKETS order.

    `rules`: parse_rule_tree() of `pfctl -a '*' -sr`; `skipped`: parse_interfaces()
    of `pfctl -sI -v`, frozenset(.skipped); `egress`: from `ifconfig egress` (None when
    unknown: the classes on egress are UNKNOWN); `vpn_network` and
    `ppp_interface` ('pppx' or 'pppac0') from the configuration.
    """
    out: list[PacketVerdict] = []
    for packet, pid in _packets(egress, vpn_network, ppp_interface):
        if packet is None:
            out.append(PacketVerdict(pid, "unknown", "", "the egress interface or its "
                                     "address is not known (`ifconfig egress`)"))
            continue
        out.append(_evaluate(rules, packet, skipped, egress))
    return tuple(out)
