"""Parsers of pfctl(8) output: pf status, memory limits and rulesets.

    $ pfctl -si
    Status: Enabled for 0 days 01:02:03              Debug: err
    $ pfctl -sm
    states        hard limit   100000
    $ pfctl -sr
    match out on vio0 inet from 10.0.0.0/24 to any set (prio(3, 4)) nat-to (vio0) round-robin
    $ pfctl -nvf /etc/pf.conf
    ext_if = "vio0"
    pass in on vio0 proto udp from any to any port = 500
    $ pfctl -a '*' -sr
    block return all
    anchor "vpn" all {
      pass in on egress proto esp all
    }
    $ pfctl -sI -v
    all
    enc0 (skip)

Formats, as read in openbsd/src:
- sbin/pfctl/pfctl_parser.c rev 1.352: print_status() (`-si`), print_rule(),
  print_fromto(), print_port() (service names only with `-P` since
  PF_OPT_PORTNAMES), print_pool(), print_tabledef(), print_queuespec().
- sbin/pfctl/pf_print_state.c: print_addr() (`<table>`, `(ifname[:mod])`,
  `A - B` ranges; `:N` counts only with `-vv`).
- sbin/pfctl/pfctl_table.c rev 1.91: print_iface() (`-sI`, ` (skip)` with -v).
- sbin/pfctl/pfctl.c rev 1.397: pfctl_show_limits() (`"%-13s "` then
  `"hard limit %8u"` or `"unlimited"`), pfctl_show_rules() (anchor blocks
  `{`/`}`, two blanks of indent per level unless -v),
  pfctl_print_rule_counters() (`  [ ... ]` lines), pfctl_load_rule() and
  pfctl_load_ruleset() (`-nv` prints the rules the same way), the `set ...`
  lines of pfctl_set_limit() & co.
- sbin/pfctl/parse.y: `NAME = "value"` macro lines with -v (varset).
- sbin/pfctl/pfctl_optimize.c: optimizer tables are named
  `__automatic_<arc4random hex>_<n>`, so the hex differs on every pfctl run.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from . import UNSIGNED, ParseError, unsigned

INFO_COMMAND = "pfctl -si"
LIMITS_COMMAND = "pfctl -sm"
RULES_COMMAND = "pfctl -sr"
RULES_TREE_COMMAND = "pfctl -a * -sr"
INTERFACES_COMMAND = "pfctl -sI -v"

# pfctl_show_limits() prints "unlimited" for the kernel's UINT_MAX.
UNLIMITED = 2**32 - 1

# Service names print_port() may print (with -P, or by default in older
# releases), as numbers.  Only the services a VPN host and the samples use;
# any other name is kept as printed.
SERVICE_PORTS = {
    "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
    "bootps": 67, "bootpc": 68, "tftp": 69, "www": 80, "http": 80, "pop3": 110,
    "sunrpc": 111, "auth": 113, "ntp": 123, "snmp": 161, "https": 443, "isakmp": 500,
    "syslog": 514, "submission": 587, "imaps": 993, "pop3s": 995, "l2tp": 1701,
    "pptp": 1723, "ipsec-nat-t": 4500,
}

# Protocol names of /etc/protocols that pf.conf files on VPN hosts use, as
# numbers: the name getprotobynumber() gives print_rule() (pfctl_parser.c rev
# 1.352) first, then an alias (icmp6).
PROTOCOL_NUMBERS = {
    "icmp": 1, "igmp": 2, "ipencap": 4, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47,
    "esp": 50, "ah": 51, "ipv6-icmp": 58, "icmp6": 58, "ospf": 89, "etherip": 97,
    "pim": 103, "carp": 112, "sctp": 132, "pfsync": 240,
}

# A line pfctl writes instead of its output: err(3)/warnx(3) ("pfctl: /dev/pf:
# Permission denied") or a pf.conf parse error ("/etc/pf.conf:12: syntax error").
_ERROR_LINE = re.compile(r"pfctl: |\S+:[0-9]+: ")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _check_line(command: str, lineno: int, line: str) -> None:
    if _CONTROL.search(line):
        raise ParseError(command, "control characters: not pfctl output", lineno)
    if _ERROR_LINE.match(line):
        raise ParseError(command, "pfctl printed an error instead of its output",
                         lineno, line)


# ---------------------------------------------------------------------------
# pfctl -si


@dataclass(frozen=True)
class PfInfo:
    """`pfctl -si`: pf on/off, the state table and the Counters section."""

    enabled: bool
    status_for_s: int | None          # since enable/disable; None for the runtime==0 form
    debug: str                        # syslog level name ('err'), or old 'Urgent'/'None'
    states_current: int
    states_half_open: int | None      # `half-open tcp`: not printed by older releases
    state_counters: tuple[tuple[str, int], ...]   # searches, inserts, removals
    counters: tuple[tuple[str, int], ...]         # Counters: match, bad-offset, ...
    unknown_lines: int = 0

    def state_counter(self, name: str) -> int | None:
        return dict(self.state_counters).get(name)

    def counter(self, name: str) -> int | None:
        """A Counters value, or a state table counter (the names never overlap)."""
        return dict(self.counters).get(name, dict(self.state_counters).get(name))


# Numbers are [0-9], never \d (which takes '١٢٣'), and are read by unsigned().
_STATUS = re.compile(r"Status: (Enabled|Disabled)"
                     r"(?: for ([0-9]+) days ([0-9]{2}):([0-9]{2}):([0-9]{2}))?"
                     r"\s*Debug: (\S+)\s*")
# "  %-25s %14llu " then "%14.1f/s" or 14 blanks.  Names are words joined by
# single blanks, so a stray number can never be read as part of a name.
# re.ASCII: pfctl's counter names are ASCII, and a Unicode \w would take 'é'.
_ROW = re.compile(r"  ([A-Za-z][\w-]*(?: [A-Za-z][\w-]*)*)\s+([0-9]+)"
                  r"(?:\s+[0-9]+\.[0-9]+/s)?\s*", re.ASCII)
_STATE_HEADER = re.compile(r"State Table\s+Total\s+Rate\s*")
# -v sections and `set loginterface` stats: tolerated, not read.
_OTHER_SECTIONS = ("Source Tracking Table", "Fragments", "Limit Counters",
                   "Adaptive Syncookies Watermarks", "Interface Stats for ",
                   "Hostid:", "Checksum:")
_REQUIRED_STATE_COUNTERS = ("searches", "inserts", "removals")


def parse_info(text: str) -> PfInfo:
    """Parse `pfctl -si` (also `-vsi`) as print_status() prints it."""
    cmd = INFO_COMMAND
    status: re.Match[str] | None = None
    seconds: int | None = None
    section: str | None = None
    seen_sections: set[str] = set()
    state: dict[str, int] = {}
    counters: dict[str, int] = {}
    unknown = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        _check_line(cmd, lineno, line)
        if not line.strip():
            continue
        if status is None:
            status = _STATUS.fullmatch(line)
            if status is None:
                raise ParseError(cmd, "expected the Status line first", lineno, line)
            if status[2] is not None:
                days, hours, minutes, secs = (unsigned(status[i], cmd, lineno, line)
                                              for i in range(2, 6))
                seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
            continue
        if not line.startswith(" "):
            if _STATE_HEADER.fullmatch(line):
                section = "state"
            elif line.rstrip() == "Counters":
                section = "counters"
            elif line.startswith(_OTHER_SECTIONS):
                section = "other"
                continue
            else:
                section = "unknown"
                unknown += 1
                continue
            if section in seen_sections:
                raise ParseError(cmd, "section printed twice", lineno, line)
            seen_sections.add(section)
            continue
        if section == "other":
            continue
        if section == "unknown":
            unknown += 1
            continue
        if section is None:
            unknown += 1
            continue
        row = _ROW.fullmatch(line)
        if row is None:
            raise ParseError(cmd, "expected `name  number  [rate/s]`", lineno, line)
        table = state if section == "state" else counters
        if row[1] in table:
            raise ParseError(cmd, f"{row[1]!r} printed twice", lineno, line)
        table[row[1]] = unsigned(row[2], cmd, lineno, line)

    if status is None:
        raise ParseError(cmd, "no Status line (empty output)")
    for name, present in (("State Table", "state" in seen_sections),
                          ("Counters", "counters" in seen_sections)):
        if not present:
            raise ParseError(cmd, f"no {name} section (truncated or renamed)")
    for name in ("current entries", *_REQUIRED_STATE_COUNTERS):
        if name not in state:
            raise ParseError(cmd, f"State Table has no {name!r} line")
    if "match" not in counters:
        raise ParseError(cmd, "Counters section has no 'match' line")

    return PfInfo(
        enabled=status[1] == "Enabled",
        status_for_s=seconds,
        debug=status[6],
        states_current=state.pop("current entries"),
        states_half_open=state.pop("half-open tcp", None),
        # Every other State Table row is an FCNT counter (searches, inserts, removals).
        state_counters=tuple(state.items()),
        counters=tuple(counters.items()),
        unknown_lines=unknown,
    )


# ---------------------------------------------------------------------------
# pfctl -sm


@dataclass(frozen=True)
class PfLimits:
    """`pfctl -sm`: pf's memory pool hard limits (UNLIMITED for "unlimited")."""

    limits: tuple[tuple[str, int], ...]
    unknown_lines: int = 0

    def get(self, name: str) -> int | None:
        return dict(self.limits).get(name)

    @property
    def states_hard_limit(self) -> int:
        value = self.get("states")
        if value is None:
            raise ParseError(LIMITS_COMMAND, "no 'states' limit")
        return value


_LIMIT = re.compile(r"(\S+)\s+(?:hard limit\s+([0-9]+)|unlimited)\s*")
_LIMIT_LIKE = re.compile(r"\S+\s+(?:hard limit|unlimited)")


def parse_limits(text: str) -> PfLimits:
    """Parse `pfctl -sm` as pfctl_show_limits() prints it."""
    cmd = LIMITS_COMMAND
    limits: dict[str, int] = {}
    unknown = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        _check_line(cmd, lineno, line)
        if not line.strip():
            continue
        m = _LIMIT.fullmatch(line)
        if m is None:
            if _LIMIT_LIKE.match(line):
                raise ParseError(cmd, "bad limit value", lineno, line)
            unknown += 1
            continue
        if m[1] in limits:
            raise ParseError(cmd, f"limit {m[1]!r} printed twice", lineno, line)
        limits[m[1]] = unsigned(m[2], cmd, lineno, line) if m[2] is not None else UNLIMITED
    if "states" not in limits:
        raise ParseError(cmd, "no 'states' limit line")
    return PfLimits(limits=tuple(limits.items()), unknown_lines=unknown)


# ---------------------------------------------------------------------------
# pfctl -sr / -vvsr / -nvf


@dataclass(frozen=True)
class PfRule:
    """One rule line as print_rule() prints it.

    `interface` is the name without its negation; `on ! lo0` gives
    interface='lo0', interface_negated=True.  `src`/`dst` are as printed,
    negation included ('! 10.0.0.0/8', '<vpn>', '(vio0)', 'any' for `all`).
    Ports: '500' for `port = 500` (and `port = isakmp`), otherwise the
    operator text ('!= 22', '>= 80', '1024:2048', '21 >< 2048').
    `tagged` keeps a negation as '!NAME'.  `path` is the anchor block the rule
    sits in ('' at top level, 'one/two', '_1' for an unnamed brace anchor);
    an anchor rule's own block is `anchor_path`, and `expanded` says its
    `{ ... }` block was printed.  `info` holds the `  [ ... ]` lines of -v.
    """

    action: str                       # 'pass' | 'block' | 'match' | 'anchor'
    direction: str | None             # 'in' | 'out' | None (both)
    quick: bool
    log: bool
    interface: str | None
    interface_negated: bool
    af: str | None                    # 'inet' | 'inet6' | None
    proto: str | None                 # as printed: 'udp', 'esp', 'ipv6-icmp', '50'
    src: str
    src_port: str | None
    dst: str
    dst_port: str | None
    nat_to: str | None
    rdr_to: str | None
    tagged: str | None
    tag: str | None
    label: str | None
    text: str                         # normalize_rule() of the line
    depth: int
    number: int | None                # `@N` of -vv
    path: str = ""
    anchor_path: str | None = None
    expanded: bool = False
    info: tuple[str, ...] = ()
    anchor_name: str | None = None    # `anchor "vpn"` -> 'vpn'; None for `anchor` (unnamed)
    on_rdomain: str | None = None     # `on rdomain 1` -> '1' ('! 1' when negated)
    os: str | None = None             # `from A os "OpenBSD" to B` -> '"OpenBSD"'
    # Every token print_rule() printed after from/to (or `all`), as split by
    # _tokens(): `flags S/SA`, `keep state`, `user = 55`, `nat-to (vio0)`, ...
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PfRuleset:
    """`pfctl -sr` (loaded rules) or `pfctl -nvf FILE` (what FILE would load)."""

    rules: tuple[PfRule, ...]
    options: tuple[str, ...] = ()     # `set ...` lines (-nvf only)
    tables: tuple[str, ...] = ()      # `table <name> ...` definitions (-nvf only)
    macros: tuple[tuple[str, str], ...] = ()   # ('ext_if', 'vio0') (-nvf only)
    queues: tuple[str, ...] = ()      # `queue ...` lines (-nvf only)
    unknown_lines: int = 0



_ACTIONS = frozenset({"pass", "block", "match", "anchor"})
_RULE_NUMBER = re.compile(r"@([0-9]+)")
_BLOCK_MODIFIER = re.compile(r"drop|return|return-rst(?:\(ttl [0-9]+\))?|return-icmp6?\(.*\)")
# Interface and protocol names are ASCII (IFNAMSIZ names, /etc/protocols).
_NAME = re.compile(r"[\w.-]+", re.ASCII)
_SYMBOLIC_ADDRESS = re.compile(r"any|no-route|urpf-failed|self|<[^<>\s]+>|\([^()\s]+\)")
_PORT_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_MACRO = re.compile(r'([A-Za-z_]\w*) = "(.*)"', re.ASCII)    # parse.y: isalnum() or '_'
_AUTOMATIC_TABLE = re.compile(r"<__automatic_[0-9a-f]+_([0-9]+)>")
_TABLE_COUNT = re.compile(r"<([^<>:\s]+):(?:[0-9]+|\*)>")
_DYNADDR_COUNT = re.compile(r"\(([^()\s]+?):(?:[1-9][0-9]*|\*)\)")


class _BadRule(ValueError):
    pass


def _tokens(line: str) -> list[str]:
    """Split on blanks, keeping "quoted strings" and (parenthesised groups) whole."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    for ch in line:
        if quoted:
            current.append(ch)
            quoted = ch != '"'
            continue
        if ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise _BadRule("unbalanced ')'")
        elif ch.isspace() and depth == 0:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(ch)
    if quoted or depth:
        raise _BadRule("unbalanced quote or '('")
    if current:
        tokens.append("".join(current))
    return tokens


def _port_number(name: str) -> str:
    port = SERVICE_PORTS.get(name)
    return name if port is None else str(port)


def normalize_rule(line: str) -> str:
    """Canonical text of a rule line, for comparing `-sr` with `-nvf`.

    Both print through print_rule(), so label, `flags S/SA`, state options
    and pools are printed alike.  What differs, and is removed here:
    `@N ` (-vv), indentation and the ` {` of an expanded anchor, the `:N`
    counts of -vv on `<table:N>` and `(if:N)`, ` # expired` (-vv, once
    rules), the random hex in optimizer tables (`<__automatic_3f2a_0>` ->
    `<__automatic_0>`), blanks inside parentheses (`set ( prio 3 )` of
    older releases -> `set (prio 3)` of rev 1.352), and service names in
    `port = NAME` (older releases, or -P) -> numbers.
    """
    try:
        tokens = _tokens(re.sub(r"\s+# expired\s*$", "", line.strip()))
    except _BadRule as e:
        raise ParseError(RULES_COMMAND, str(e), None, line) from None
    if tokens and _RULE_NUMBER.fullmatch(tokens[0]):
        tokens = tokens[1:]
    if tokens and tokens[-1] == "{":
        tokens = tokens[:-1]
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.startswith("(") or "(" in tok and not tok.startswith('"'):
            tok = re.sub(r"\s+", " ", tok)
            tok = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", tok))
            tok = _DYNADDR_COUNT.sub(r"(\1)", tok)
        elif tok.startswith("<"):
            tok = _TABLE_COUNT.sub(r"<\1>", tok)
            tok = _AUTOMATIC_TABLE.sub(r"<__automatic_\1>", tok)
        elif i >= 2 and tokens[i - 2] == "port" and tokens[i - 1] in ("=", "!="):
            tok = _port_number(tok)
        out.append(tok)
    return " ".join(out)


@dataclass
class _Head:
    """The fixed-order part of a rule, parsed strictly."""

    number: int | None = None
    action: str = ""
    anchor_name: str | None = None
    direction: str | None = None
    log: bool = False
    quick: bool = False
    interface: str | None = None
    interface_negated: bool = False
    af: str | None = None
    proto: str | None = None
    src: str = "any"
    src_port: str | None = None
    dst: str = "any"
    dst_port: str | None = None
    rdomain: str | None = None
    os: str | None = None
    tail: tuple[str, ...] = ()


def _parse_head(tokens: list[str]) -> _Head:
    h = _Head()
    i = 0

    def peek(k: int = 0) -> str | None:
        return tokens[i + k] if i + k < len(tokens) else None

    m = _RULE_NUMBER.fullmatch(tokens[0])
    if m:
        # `@%u` of the rule's u_int32 number: see parsers.UNSIGNED.
        if not UNSIGNED.fullmatch(m[1]):
            raise _BadRule("rule number `@N` of more than 20 digits")
        h.number = int(m[1])
        i += 1
    if peek() not in _ACTIONS:
        raise _BadRule(f"unknown action {peek()!r}")
    h.action = tokens[i]
    i += 1
    if h.action == "anchor" and (peek() or "").startswith('"'):
        h.anchor_name = tokens[i].strip('"')
        i += 1
    if h.action == "block" and _BLOCK_MODIFIER.fullmatch(peek() or ""):
        i += 1
    if peek() in ("in", "out"):
        h.direction = tokens[i]
        i += 1
    if peek() == "log":
        h.log = True
        i += 1
        if (peek() or "").startswith("("):
            i += 1
    if peek() == "quick":
        h.quick = True
        i += 1
    while peek() == "on":
        negated = peek(1) == "!"
        name = peek(2 if negated else 1)
        if name is None or not _NAME.fullmatch(name):
            raise _BadRule("bad interface after 'on'")
        i += 3 if negated else 2
        if name == "rdomain":       # `on rdomain N`: a routing domain, not an interface
            if not UNSIGNED.fullmatch(peek() or ""):    # isdigit() would take '²'.
                raise _BadRule("bad rdomain")
            h.rdomain = ("! " if negated else "") + tokens[i]
            i += 1
            continue
        h.interface, h.interface_negated = name, negated
    if peek() in ("inet", "inet6"):
        h.af = tokens[i]
        i += 1
    if peek() == "proto":
        if not _NAME.fullmatch(peek(1) or ""):
            raise _BadRule("bad proto")
        h.proto = tokens[i + 1]
        i += 2
    if peek() == "all":
        i += 1
    elif peek() == "from":
        h.src, h.src_port, i = _parse_host(tokens, i + 1)
        if peek() == "os":
            if not (peek(1) or "").startswith('"'):
                raise _BadRule("bad os")
            h.os = tokens[i + 1]
            i += 2
        if peek() != "to":
            raise _BadRule("expected 'to'")
        h.dst, h.dst_port, i = _parse_host(tokens, i + 1)
    else:
        raise _BadRule("expected 'all' or 'from'")
    h.tail = tuple(tokens[i:])
    return h


def _is_address(token: str) -> bool:
    """What print_addr() prints: a keyword, <table>, (ifname) or inet_ntop[/bits]."""
    if _SYMBOLIC_ADDRESS.fullmatch(token):
        return True
    try:
        ipaddress.ip_network(token.split("%")[0].split("/")[0])
        ipaddress.ip_network(token.split("%")[0], strict=False)
    except ValueError:
        return False
    return True


def _parse_host(tokens: list[str], i: int) -> tuple[str, str | None, int]:
    """`[!] ADDR [port OP N | port N:M | port N >< M]` as print_fromto() prints it."""
    def at(k: int) -> str:
        if k >= len(tokens):
            raise _BadRule("truncated address")
        return tokens[k]

    prefix = ""
    if at(i) == "!":
        prefix, i = "! ", i + 1
    addr = at(i)
    if addr == "route":             # `route "rtlabel"`
        addr = f"route {at(i + 1)}"
        i += 1
    elif not _is_address(addr):
        raise _BadRule(f"bad address {addr!r}")
    i += 1
    if i < len(tokens) and tokens[i] == "-":   # PF_ADDR_RANGE: `A - B`
        if not _is_address(at(i + 1)):
            raise _BadRule("bad address range")
        addr = f"{addr} - {tokens[i + 1]}"
        i += 2
    port = None
    if i < len(tokens) and tokens[i] == "port":
        first = at(i + 1)
        if first in _PORT_OPS:
            value = _port_number(at(i + 2))
            port = value if first == "=" else f"{first} {value}"
            i += 3
        elif i + 2 < len(tokens) and tokens[i + 2] in ("><", "<>"):
            port = f"{first} {tokens[i + 2]} {at(i + 3)}"
            i += 4
        elif re.fullmatch(r"[0-9]+:[0-9]+", first):
            port = first
            i += 2
        else:
            raise _BadRule("bad port")
    return prefix + addr, port, i


def _tail_value(tail: tuple[str, ...], keyword: str) -> str | None:
    for k, tok in enumerate(tail[:-1]):
        if tok == keyword:
            value = tail[k + 1]
            if k + 3 < len(tail) and tail[k + 2] == "-":
                value = f"{value} - {tail[k + 3]}"
            return value
    return None


def _rule(h: _Head, line: str, depth: int, path: str, anchor_path: str | None,
          expanded: bool, info: tuple[str, ...]) -> PfRule:
    tail = h.tail[:-1] if h.tail and h.tail[-1] == "{" else h.tail
    tagged = _tail_value(tail, "tagged")
    if tagged is not None and tail[tail.index("tagged") - 1] == "!":
        tagged = "!" + tagged
    label = _tail_value(tail, "label")
    return PfRule(
        action=h.action, direction=h.direction, quick=h.quick, log=h.log,
        interface=h.interface, interface_negated=h.interface_negated, af=h.af,
        proto=h.proto, src=h.src, src_port=h.src_port, dst=h.dst, dst_port=h.dst_port,
        nat_to=_tail_value(tail, "nat-to"), rdr_to=_tail_value(tail, "rdr-to"),
        tagged=tagged, tag=_tail_value(tail, "tag"),
        label=label.strip('"') if label is not None else None,
        text=normalize_rule(line), depth=depth, number=h.number, path=path,
        anchor_path=anchor_path, expanded=expanded, info=info,
        anchor_name=h.anchor_name, on_rdomain=h.rdomain, os=h.os, options=tail,
    )


def parse_rules(text: str, command: str = RULES_COMMAND) -> PfRuleset:
    """Parse `pfctl -sr`, `-vvsr`/`-gvvsr`, or `pfctl -nvf FILE` output.

    A line that starts with pass/block/match/anchor (after an optional `@N`)
    is a rule and must parse, or ParseError is raised: a misread rule would
    hide drift.  `set`, `table <...>`, `queue` and `NAME = "value"` lines are
    recorded; any other line is counted in unknown_lines.  Anchor blocks must
    be balanced, so output cut inside a block raises too.
    """
    rules: list[dict[str, Any]] = []  # _rule() arguments, complete once the info lines are read
    options: list[str] = []
    tables: list[str] = []
    macros: list[tuple[str, str]] = []
    queues: list[str] = []
    unknown = recognised = 0
    # One entry per open anchor block: (its path, {component: uses} of its children).
    stack: list[tuple[str, dict[str, int]]] = [("", {})]
    for lineno, line in enumerate(text.splitlines(), 1):
        _check_line(command, lineno, line)
        stripped = line.strip()
        if not stripped:
            continue
        recognised += 1
        if stripped.startswith("[") and stripped.endswith("]"):
            if not rules:
                raise ParseError(command, "counter line before any rule", lineno, line)
            rules[-1]["info"] += (stripped,)
            continue
        if stripped == "}":
            if len(stack) == 1:
                raise ParseError(command, "'}' without an open anchor block", lineno)
            stack.pop()
            continue
        first = stripped.split(None, 1)[0]
        if first in _ACTIONS or first.startswith("@"):
            try:
                tokens = _tokens(stripped)
                head = _parse_head(tokens)
            except _BadRule as e:
                raise ParseError(command, f"unparseable rule: {e}", lineno, line) from None
            parent, children = stack[-1]
            anchor_path = None
            opens = tokens[-1] == "{"
            if opens and head.action != "anchor":
                raise ParseError(command, "'{' after a rule that is not an anchor",
                                 lineno, line)
            if head.action == "anchor":
                name = head.anchor_name or f"_{sum(1 for c in children if c.startswith('_')) + 1}"
                uses = children.get(name, 0)
                children[name] = uses + 1
                component = name if not uses else f"{name}#{uses + 1}"
                anchor_path = f"{parent}/{component}" if parent else component
            rules.append({"h": head, "line": stripped, "depth": len(stack) - 1,
                          "path": parent, "anchor_path": anchor_path, "expanded": opens,
                          "info": ()})
            if opens:
                stack.append((anchor_path or "", {}))
            continue
        if first == "set":
            options.append(" ".join(stripped.split()))
        elif first == "table" and stripped.startswith("table <"):
            tables.append(" ".join(stripped.split()))
        elif first == "queue":
            queues.append(" ".join(stripped.split()))
        elif m := _MACRO.fullmatch(stripped):
            macros.append((m[1], m[2]))
        else:
            recognised -= 1
            unknown += 1
    if len(stack) > 1:
        raise ParseError(command, "anchor block not closed (truncated output)")
    if unknown and not recognised:
        raise ParseError(command, "no rule or pf.conf line found: not pfctl output")
    built = tuple(_rule(**r) for r in rules)
    return PfRuleset(rules=built, options=tuple(options), tables=tuple(tables),
                     macros=tuple(macros), queues=tuple(queues), unknown_lines=unknown)


# ---------------------------------------------------------------------------
# pfctl -a '*' -sr: the ruleset with every anchor's rules, as a tree


@dataclass(frozen=True)
class PfNode:
    """One rule of the tree; an anchor rule carries the rules of its anchor.

    `children` is None for every rule that is not an anchor, and for an
    anchor whose block pfctl did not print (plain `pfctl -sr` prints a named
    anchor as `anchor "vpn" all` only): what that anchor holds is not known.
    """

    rule: PfRule
    children: tuple[PfNode, ...] | None = None


@dataclass(frozen=True)
class PfRuleTree:
    """`pfctl -a '*' -sr`: the main ruleset, anchors expanded in place, in order."""

    rules: tuple[PfNode, ...]


def parse_rule_tree(text: str, command: str = RULES_TREE_COMMAND) -> PfRuleTree:
    """Parse `pfctl -a '*' -sr` (or `-sr`, `-nvf`) output into a rule tree.

    pfctl.c rev 1.397 pfctl_show_rules(): `-a '*'` sets PF_OPT_RECURSE with an
    empty anchor path, so every rule is printed with print_rule() after
    INDENT(depth) (two blanks a level), and an anchor rule is followed by ` {`,
    the rules of its ruleset one level deeper, and `}` at its own depth.
    Without the `*` only unnamed (`_N`) anchors are expanded.  The layout
    is checked by parse_rules(); this only nests what it returns.
    """
    return rule_tree(parse_rules(text, command), command)


def rule_tree(flat: PfRuleset, command: str = RULES_TREE_COMMAND) -> PfRuleTree:
    """The rules parse_rules() read, nested by their anchors (no second parse).
    A line it did not understand could be a rule: then there is no tree."""
    if flat.unknown_lines:
        raise ParseError(command, f"{flat.unknown_lines} line(s) that are not rules: "
                         "not `pfctl -sr` output")
    pos = 0

    def level(path: str, depth: int) -> tuple[PfNode, ...]:
        nonlocal pos
        nodes: list[PfNode] = []
        while pos < len(flat.rules):
            rule = flat.rules[pos]
            if rule.depth < depth or rule.path != path:
                break
            pos += 1
            children = None
            if rule.action == "anchor" and rule.expanded:
                children = level(rule.anchor_path or "", depth + 1)
            nodes.append(PfNode(rule, children))
        return tuple(nodes)

    rules = level("", 0)
    if pos != len(flat.rules):      # parse_rules() keeps blocks balanced: cannot happen
        raise ParseError(command, "rule outside its anchor block")
    return PfRuleTree(rules)


# ---------------------------------------------------------------------------
# pfctl -sI -v: interfaces and groups pf knows, and which are skipped

# IFNAMSIZ is 16 with the NUL (sys/net/if.h): at most 15 characters.
_IFACE = re.compile(r"([A-Za-z][A-Za-z0-9_.-]{0,14})( \(skip\))?")


@dataclass(frozen=True)
class PfInterfaces:
    """`pfctl -sI -v`: every interface and interface group pf has a kif for.

    `skipped` are those `set skip on` marked: pf passes their packets
    unfiltered.  pf_if.c rev 1.112 pfi_xcommit() copies a group's skip flag
    onto its member interfaces, so `set skip on pppx` marks `pppx` and each
    `pppxN` that is in the group; pfi_group_addmember() does it again for a
    member added later (a new npppd session).
    """

    names: tuple[str, ...]
    skipped: tuple[str, ...]          # in printed order


def parse_interfaces(text: str, command: str = INTERFACES_COMMAND) -> PfInterfaces:
    """Parse `pfctl -sI -v` as pfctl_table.c rev 1.91 print_iface() prints it.

    print_iface(): `printf("%s", p->pfik_name)`, then ` (skip)` when
    PF_OPT_VERBOSE and PFI_IFLAG_SKIP, then a newline; the TAB-indented
    Cleared/References/counter lines come only with -vv and are skipped here.
    pfi_all (`all`) always exists (pf_if.c pfi_initialize()), so empty
    output is an error, not "no interface".
    """
    names: dict[str, None] = {}      # in printed order; a dict, so a repeat is found in O(1)
    skipped: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        _check_line(command, lineno, line.replace("\t", " "))
        if not line.strip() or line.startswith("\t"):
            continue
        m = _IFACE.fullmatch(line)
        if m is None:
            raise ParseError(command, "expected `NAME` or `NAME (skip)`", lineno, line)
        if m[1] in names:
            raise ParseError(command, f"{m[1]!r} printed twice", lineno, line)
        names[m[1]] = None
        if m[2]:
            skipped.append(m[1])
    if not names:
        raise ParseError(command, "no interface printed (pf always has `all`): truncated")
    return PfInterfaces(tuple(names), tuple(skipped))


_SET_SKIP = re.compile(r"set skip on (?:\{((?: [^ {}]+)+) \}|([^ {}]+))")


def parse_skip(text: str) -> tuple[str, ...]:
    """The interfaces and groups `set skip on` names in `pfctl -nvf` output.

    pfctl -nv prints its option lines in file order (FORMATS.md: `set skip on
    …`), one statement per line: `set skip on { lo enc0 }` or `set skip on lo`.
    """
    names: dict[str, None] = {}
    for line in text.splitlines():
        m = _SET_SKIP.fullmatch(line.strip())
        if m:
            names.update(dict.fromkeys((m.group(1) or m.group(2)).split()))
    return tuple(names)
