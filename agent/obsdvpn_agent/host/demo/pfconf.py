"""A small pf.conf(5) compiler: the subset of the grammar the demo host uses.

It parses pf.conf the way sbin/pfctl/parse.y does for that subset (macros,
`set skip/block-policy/reassemble/loginterface/limit`, pass/block/match rules
with on/af/proto/from/to/port/user/flags/state options/label/tag/tagged/
nat-to/rdr-to, inline anchors `anchor ["NAME"] [criteria] {` ... `}` and
`anchor "NAME"`) and prints each loaded rule with print_rule() of
sbin/pfctl/pfctl_parser.c rev 1.352: ports as numbers (7.x prints names only
with -P), `flags S/SA` on stateful tcp rules, `all` for from any to any,
expansion of `{ }` lists in expand_rule() order.  What `pfctl -nvf` prints
first: macros as `name = "value"` (parse.y varset) and `set ...` lines, in
file order; the rules follow once the whole file parsed.

Errors are reported like parse.y's yyerror: `FILE:LINE: message`.  A
construct outside the subset (table definitions, `load anchor`, antispoof,
queues, route-to, scrub, ...) is reported as a syntax error: that is where
the demo differs from a real pfctl.  The ruleset optimizer (-o basic) is not
modelled.  decide() is the demo's kernel: pf's decision for one packet over
the loaded entries, which `demo connect` can use to fail a blocked client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, TypeVar

from ...parsers.pfctl import PROTOCOL_NUMBERS, SERVICE_PORTS

# A loaded rule as the state file keeps it (plain JSON, see _expand()), and the
# JSON objects inside one: its match fields ("m") and their host specs.
Entry = dict[str, Any]
JsonObject = dict[str, Any]
_T = TypeVar("_T")

# Port names of /etc/services that pf.conf files on VPN hosts use: the one table.
SERVICES = SERVICE_PORTS
# /etc/protocols: name -> number (the one table), and the canonical name
# getprotobynumber() gives, the first of a number's names there.
PROTOCOLS = PROTOCOL_NUMBERS
PROTO_NAMES = {number: name for name, number in reversed(PROTOCOL_NUMBERS.items())}
# uids of /etc/passwd users pf.conf rules name.  _pbuild = 55 as printed in a
# real 6.3 `pfctl -sr` (pfctl/real/oams63-sr.txt).
PASSWD = {"root": 0, "_pbuild": 55}
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
LIMIT_NAMES = ("states", "src-nodes", "frags", "tables", "table-entries",
               "pktdelay-pkts", "anchors")
TCP = 6


class PfConfError(Exception):
    """The file did not parse: `errors` are the stderr lines, `printed` what -v showed."""

    def __init__(self, errors: list[str], printed: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.printed = printed


@dataclass(frozen=True)
class Compiled:
    printed: tuple[str, ...]            # `-v` lines printed while parsing (macros, set)
    # The loaded ruleset as JSON-able state entries, in load order: a
    # {"skip": [names]} entry first when `set skip` is used (the kernel's
    # PFI_IFLAG_SKIP flags, replaced by every load as pfctl -f clears them
    # first), then one entry per rule (see _expand()).
    rules: tuple[Entry, ...]
    limits: dict[str, int] = field(default_factory=dict)  # `set limit` values
    debug: str | None = None            # `set debug`


@dataclass
class Net:
    """Interfaces and groups the rules may name: name -> IPv4 addresses."""

    addresses: dict[str, list[str]]
    groups: dict[str, list[str]]

    def exists(self, name: str) -> bool:
        return name in self.addresses or name in self.groups

    def lookup(self, name: str) -> list[str]:
        members = self.groups.get(name, [name])
        return [a for m in members for a in self.addresses.get(m, [])]

    @cached_property
    def memberships(self) -> dict[str, frozenset[str]]:
        """Interface -> the groups here it is in, built once: the pppx group of a
        busy host has a member per session, and pfctl -sI asks for each."""
        found: dict[str, set[str]] = {}
        for group, members in self.groups.items():
            for member in members:
                found.setdefault(member, set()).add(group)
        return {member: frozenset(groups) for member, groups in found.items()}


class _Error(Exception):
    def __init__(self, lineno: int, message: str = "syntax error") -> None:
        self.lineno = lineno
        self.message = message


# --- lexer -----------------------------------------------------------------

_PUNCT2 = ("!=", "<=", ">=", "<>", "><")


@dataclass(frozen=True)
class _Tok:
    kind: str      # "w" word, "q" quoted string, "p" punctuation
    text: str
    line: int


def _statements(text: str, macros: dict[str, str]
                ) -> Iterator[tuple[int, Callable[[], list[_Tok]]]]:
    """Yield (first line, lex) per statement; lex() returns its tokens.

    Backslash-newline joins lines.  Lexing is left to the caller's lex() call
    so that $macros are expanded with the definitions made before the
    statement, as parse.y's lexer does.
    """
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        start = i + 1
        logical = lines[i]
        line_of = [start] * len(logical)
        while logical.endswith("\\") and i + 1 < len(lines):
            logical = logical[:-1] + " "
            line_of = line_of[:-1] + [i + 1]
            i += 1
            line_of += [i + 1] * len(lines[i])
            logical += lines[i]
        i += 1
        yield start, partial(_lex, logical, line_of, start, macros)


def _lex(s: str, line_of: list[int], start: int, macros: dict[str, str]) -> list[_Tok]:
    toks: list[_Tok] = []
    j = 0
    while j < len(s):
        c = s[j]
        line = line_of[j] if j < len(line_of) else start
        if c in " \t":
            j += 1
        elif c == "#":
            break
        elif c in "\"'":
            end = s.find(c, j + 1)
            if end < 0:
                raise _Error(line)
            toks.append(_Tok("q", s[j + 1:end], line))
            j = end + 1
        elif c == "$":
            m = re.match(r"[A-Za-z0-9_]+", s[j + 1:])
            name = m.group(0) if m else ""
            if name not in macros:
                raise _Error(line, f"macro '{name}' not defined")
            toks.extend(_Tok(t.kind, t.text, line)
                        for t in _lex(macros[name], [], line, macros))
            j += 1 + len(name)
        elif s[j:j + 2] in _PUNCT2:
            toks.append(_Tok("p", s[j:j + 2], line))
            j += 2
        elif c in "(){}<>!=/,":
            toks.append(_Tok("p", c, line))
            j += 1
        else:
            m = re.match(r"[^\s(){}<>!=/,#\"']+", s[j:])
            if m is None:           # \r, \f, \v: outside the demo's subset (see above)
                raise _Error(line)
            toks.append(_Tok("w", m.group(0), line))
            j += len(m.group(0))
    return toks


# --- parser ------------------------------------------------------------------

@dataclass
class _Host:
    text: str            # as print_addr prints it
    af: int = 0          # 4, 6 or 0 (any / dynamic / table)
    neg: bool = False
    dynamic: bool = False
    net: str | None = None   # a literal address as a network ('10.0.0.0/24', '192.0.2.1/32')

    def spec(self) -> JsonObject:
        """What the demo kernel matches: see decide()."""
        kind = ("any" if self.text == "any" else "dyn" if self.dynamic
                else "table" if self.text.startswith("<") else "net" if self.net
                else "other")
        value = self.text[1:-1] if kind in ("dyn", "table") else self.net
        return {"kind": kind, "value": value, "neg": self.neg}


@dataclass
class _Port:
    text: str            # what follows " port", e.g. " = 500" or " 6000:6010"
    op: str = "="        # '=', '!=', '<', '<=', '>', '>=', ':', '><', '<>'
    low: int = 0
    high: int = 0


@dataclass
class _Rule:
    action: str
    line: int
    block: str = ""
    direction: str = ""
    log: bool = False
    quick: bool = False
    ifaces: list[str | None] = field(default_factory=lambda: [None])
    ifnot: bool = False
    af: int = 0
    protos: list[int] = field(default_factory=lambda: [0])
    src: list[_Host] = field(default_factory=lambda: [_Host("any")])
    sport: list[_Port | None] = field(default_factory=lambda: [None])
    dst: list[_Host] = field(default_factory=lambda: [_Host("any")])
    dport: list[_Port | None] = field(default_factory=lambda: [None])
    users: list[str | None] = field(default_factory=lambda: [None])
    flags: tuple[str, str] | None = None   # explicit (flags, flagset) strings; ("", "") = any
    icmp_type: str | None = None
    keep: str | None = None      # "keep", "modulate", "synproxy", "no"
    state_opts: list[str] = field(default_factory=list)
    label: str | None = None
    tag: str | None = None
    tagged: str | None = None
    allow_opts: bool = False
    nat: str | None = None
    rdr: str | None = None
    anchor: str | None = None    # anchor rules: the name, '' for an unnamed `anchor {`


class _Parser:
    def __init__(self, toks: list[_Tok], net: Net, block_policy: str) -> None:
        self.t = toks
        self.i = 0
        self.net = net
        self.block_policy = block_policy

    def peek(self, k: int = 0) -> _Tok | None:
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind != "q" and tok.text in texts

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _Error(self.t[-1].line if self.t else 0)
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.next()
        if tok.text != text or tok.kind == "q":
            raise _Error(tok.line)
        return tok

    def word(self) -> _Tok:
        tok = self.next()
        if tok.kind == "p":
            raise _Error(tok.line)
        return tok

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            raise _Error(tok.line)

    # anchorrule := ANCHOR [name] [dir] [quick] [on ifs] [af] [proto] fromto filter_opts
    # (sbin/pfctl/parse.y rev 1.719 anchorrule; no `log`)
    def anchor_rule(self) -> _Rule:
        first = self.next()
        r = _Rule("anchor", first.line, anchor="")
        tok = self.peek()
        if tok is not None and (tok.kind == "q" or tok.kind == "w" and tok.text not in (
                "in", "out", "quick", "on", "inet", "inet6", "proto", "from", "to", "all")):
            name = self.next()
            if name.text == "":
                raise _Error(name.line, "anchor name must not be empty")
            if name.text.startswith("_") or "/_" in name.text:
                raise _Error(name.line, "anchor names beginning with '_' are reserved "
                                        "for internal use")
            r.anchor = name.text
        if self.at("in", "out"):
            r.direction = self.next().text
        if self.at("quick"):
            self.next()
            r.quick = True
        self.criteria(r)
        return r

    def criteria(self, r: _Rule) -> None:
        """What a rule and an anchor rule both end with: [on ifs] [af] [proto ...]
        fromto opts, to the end of the statement."""
        if self.at("on"):
            self.next()
            if self.at("!"):
                self.next()
                r.ifnot = True
            r.ifaces = self.list_of(lambda: self.word().text)
        if self.at("inet", "inet6"):
            r.af = 4 if self.next().text == "inet" else 6
        if self.at("proto"):
            self.next()
            r.protos = self.list_of(self.proto)
        self.fromto(r)
        self.options(r)
        self.done()

    # rule := action [dir] [log] [quick] [on ifs] [af] [proto ...] fromto opts
    def rule(self) -> _Rule:
        first = self.next()
        r = _Rule(first.text, first.line)
        if r.action == "block":
            r.block = self.block_policy
            if self.at("drop", "return", "return-rst"):
                r.block = self.next().text
        if self.at("in", "out"):
            r.direction = self.next().text
        while self.at("log", "quick"):
            setattr(r, self.next().text, True)
        self.criteria(r)
        if r.action == "pass" and r.keep is None:
            r.keep = "keep"
        return r

    def list_of(self, item: Callable[[], _T]) -> list[_T]:
        if not self.at("{"):
            return [item()]
        self.next()
        items: list[_T] = []
        while not self.at("}"):
            if self.at(","):
                self.next()
                continue
            items.append(item())
        self.next()
        return items

    def proto(self) -> int:
        tok = self.word()
        if tok.text.isdigit():
            return int(tok.text)
        if tok.text not in PROTOCOLS:
            raise _Error(tok.line, f"unknown protocol {tok.text}")
        return PROTOCOLS[tok.text]

    def fromto(self, r: _Rule) -> None:
        if self.at("all"):
            self.next()
            return
        if self.at("from"):
            self.next()
            if not self.at("port"):
                r.src = self.hosts()
            if self.at("port"):
                self.next()
                r.sport = self.list_of(self.port)
        if self.at("to"):
            self.next()
            if not self.at("port"):
                r.dst = self.hosts()
            if self.at("port"):
                self.next()
                r.dport = self.list_of(self.port)

    def hosts(self) -> list[_Host]:
        neg = False
        if self.at("!"):
            self.next()
            neg = True
        if self.at("{"):
            self.next()
            out: list[_Host] = []
            while not self.at("}"):
                if self.at(","):
                    self.next()
                    continue
                out.extend(self.hosts())
            self.next()
            return out
        out = self.host()
        for h in out:
            h.neg = neg
        return out

    def host(self) -> list[_Host]:
        tok = self.next()
        if tok.kind == "p" and tok.text == "(":
            name = self.word().text
            self.expect(")")
            return [_Host(f"({name})", 0, dynamic=True)]
        if tok.kind == "p" and tok.text == "<":
            name = self.word().text
            self.expect(">")
            return [_Host(f"<{name}>")]
        if tok.kind == "p":
            raise _Error(tok.line)
        if tok.text == "any":
            return [_Host("any")]
        if tok.text == "no-route":
            return [_Host("no-route")]
        bits = None
        if self.at("/"):
            self.next()
            bits_tok = self.word()
            if not bits_tok.text.isdigit():
                raise _Error(bits_tok.line)
            bits = int(bits_tok.text)
        try:
            addr = ipaddress.ip_address(tok.text)
        except ValueError:
            if self.net.exists(tok.text) and bits is None:
                return [_Host(a, 4, net=f"{a}/32") for a in self.net.lookup(tok.text)]
            raise _Error(tok.line, "could not parse host specification") from None
        full = 32 if addr.version == 4 else 128
        bits = full if bits is None else bits
        network = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
        text = str(network.network_address) + ("" if bits == full else f"/{bits}")
        return [_Host(text, addr.version, net=str(network))]

    def port(self) -> _Port:
        ops = ("=", "!=", "<", "<=", ">", ">=")
        op = self.next().text if self.at(*ops) else None
        tok = self.word()
        if op is None and ":" in tok.text:
            lo, _, hi = tok.text.partition(":")
            a, b = self.portnum(lo, tok), self.portnum(hi, tok)
            return _Port(f" {a}:{b}", ":", a, b)
        if op is None and self.at("<>", "><"):
            rop = self.next().text
            hi_tok = self.word()
            a, b = self.portnum(tok.text, tok), self.portnum(hi_tok.text, hi_tok)
            return _Port(f" {a} {rop} {b}", rop, a, b)
        a = self.portnum(tok.text, tok)
        return _Port(f" {op or '='} {a}", op or "=", a, a)

    def portnum(self, text: str, tok: _Tok) -> int:
        if text.isdigit():
            return int(text)
        if text not in SERVICES:
            raise _Error(tok.line, f"unknown port {text}")
        return SERVICES[text]

    def user(self) -> str:
        tok = self.word()
        if tok.text.isdigit():
            return tok.text
        if tok.text not in PASSWD:
            raise _Error(tok.line, f"unknown user {tok.text}")
        return str(PASSWD[tok.text])

    def options(self, r: _Rule) -> None:
        while self.peek() is not None:
            tok = self.next()
            word = tok.text if tok.kind == "w" else None
            if word == "flags":
                if self.at("any"):
                    self.next()
                    r.flags = ("", "")
                else:
                    f = self.word().text if not self.at("/") else ""
                    self.expect("/")
                    r.flags = (f, self.word().text)
            elif word == "user":
                r.users = self.list_of(self.user)
            elif word == "icmp-type":
                r.icmp_type = self.word().text
            elif word in ("keep", "modulate", "synproxy"):
                self.expect("state")
                r.keep = word
                if self.at("("):
                    self.next()
                    while not self.at(")"):
                        if self.at(","):
                            self.next()
                            continue
                        opt = self.word().text
                        if opt == "max":
                            opt = f"max {self.word().text}"
                        elif opt not in ("if-bound", "floating", "no-sync", "sloppy",
                                         "pflow"):
                            raise _Error(tok.line)
                        r.state_opts.append(opt)
                    self.next()
            elif word == "no":
                self.expect("state")
                r.keep = "no"
            elif word == "label":
                r.label = self.next().text
            elif word == "tag":
                r.tag = self.word().text
            elif word == "tagged":
                r.tagged = self.word().text
            elif word == "allow-opts":
                r.allow_opts = True
            elif word in ("nat-to", "rdr-to"):
                setattr(r, word[:3], self.redirect(word))
            else:
                raise _Error(tok.line)

    def redirect(self, kind: str) -> str:
        hosts = self.hosts()
        if len(hosts) != 1:
            raise _Error(self.t[self.i - 1].line)
        text = hosts[0].text
        pool = " round-robin" if hosts[0].dynamic else ""
        if kind == "rdr-to" and self.at("port"):
            self.next()
            text += f" port {self.word().text}"
        while self.at("round-robin", "random", "static-port", "source-hash", "bitmask"):
            opt = self.next().text
            if opt == "static-port":
                pool += " static-port"
            else:
                pool = f" {opt}"
        return text + pool


# --- print_rule ----------------------------------------------------------------

def _expand(r: _Rule, children: list[Entry] | None = None) -> list[Entry]:
    """expand_rule(): one loaded rule per interface x proto x host x port x user.

    Each is a state entry: {"text": print_rule() text, "m": what the demo
    kernel matches (decide()), "anchor": name or None, "children": entries of
    the anchor's ruleset or None}.
    """
    out = []
    for ifname in r.ifaces:
        for proto in r.protos:
            for src in r.src:
                for sport in r.sport:
                    for dst in r.dst:
                        for dport in r.dport:
                            for uid in r.users:
                                out.append({
                                    "text": _print(r, ifname, proto, src, sport, dst,
                                                   dport, uid),
                                    "m": _fields(r, ifname, proto, src, sport, dst, dport,
                                                 uid),
                                    "anchor": r.anchor,
                                    "children": children if r.anchor is not None else None,
                                })
    return out


def _fields(r: _Rule, ifname: str | None, proto: int, src: _Host, sport: _Port | None,
            dst: _Host, dport: _Port | None, uid: str | None) -> JsonObject:
    def port(p: _Port | None) -> list[str | int] | None:
        return None if p is None else [p.op, p.low, p.high]

    return {"action": r.action, "quick": r.quick, "dir": r.direction, "ifname": ifname,
            "ifnot": r.ifnot, "af": r.af or src.af or dst.af, "proto": proto,
            "src": src.spec(), "sport": port(sport), "dst": dst.spec(), "dport": port(dport),
            "uid": uid, "tag": r.tag, "tagged": r.tagged, "nat": r.nat is not None,
            "rdr": r.rdr is not None}


def _print(r: _Rule, ifname: str | None, proto: int, src: _Host, sport: _Port | None,
           dst: _Host, dport: _Port | None, uid: str | None) -> str:
    af = r.af or src.af or dst.af
    parts = [r.action]
    if r.action == "anchor":
        # print_rule(): `anchor "NAME"`, or `anchor` alone for an unnamed `_N` anchor.
        parts = [f'anchor "{r.anchor}"' if r.anchor else "anchor"]
    if r.action == "block":
        parts.append(f" {r.block}")
    if r.direction:
        parts.append(f" {r.direction}")
    if r.log:
        parts.append(" log")
    if r.quick:
        parts.append(" quick")
    if ifname:
        parts.append(f" on ! {ifname}" if r.ifnot else f" on {ifname}")
    if af:
        parts.append(" inet" if af == 4 else " inet6")
    if proto:
        parts.append(f" proto {PROTO_NAMES.get(proto, str(proto))}")
    if src.text == "any" and dst.text == "any" and not src.neg and not dst.neg \
            and sport is None and dport is None:
        parts.append(" all")
    else:
        parts.append(" from " + ("! " if src.neg else "") + src.text)
        if sport is not None:
            parts.append(" port" + sport.text)
        parts.append(" to " + ("! " if dst.neg else "") + dst.text)
        if dport is not None:
            parts.append(" port" + dport.text)
    if uid is not None:
        parts.append(f" user = {uid}")
    keep = r.keep if r.keep not in (None, "no") else None
    tcp_like = proto in (0, TCP)
    if r.flags is not None and r.flags != ("", ""):
        parts.append(f" flags {r.flags[0]}/{r.flags[1]}")
    elif r.flags is None and keep and tcp_like and r.action != "block":
        parts.append(" flags S/SA")  # parse.y: stateful tcp rules default to S/SA
    elif r.flags == ("", "") and keep and tcp_like and r.action in ("pass", "match"):
        parts.append(" flags any")
    if r.icmp_type:
        parts.append(f" icmp-type {r.icmp_type}")
    if r.keep == "no" and r.action == "pass":
        parts.append(" no state")
    elif r.keep == "keep" and r.state_opts:
        parts.append(" keep state")
    elif r.keep in ("modulate", "synproxy"):
        parts.append(f" {r.keep} state")
    if r.state_opts:
        order = ["max", "no-sync", "if-bound", "sloppy", "pflow"]
        opts = sorted(r.state_opts, key=lambda o: order.index(o.split()[0])
                      if o.split()[0] in order else 99)
        opts = [o for o in opts if o != "floating"]
        if opts:
            parts.append(" (" + ", ".join(opts) + ")")
    if r.allow_opts:
        parts.append(" allow-opts")
    if r.label is not None:
        parts.append(f' label "{r.label}"')
    if r.tag:
        parts.append(f" tag {r.tag}")
    if r.tagged:
        parts.append(f" tagged {r.tagged}")
    if r.nat:
        parts.append(f" nat-to {r.nat}")
    elif r.rdr:
        parts.append(f" rdr-to {r.rdr}")
    return "".join(parts)


# --- options and the file ---------------------------------------------------------

def _option(p: _Parser, limits: dict[str, int], state: dict[str, str], skip: list[str]) -> str:
    p.expect("set")
    what = p.word()
    if what.text == "skip":
        p.expect("on")
        names = p.list_of(lambda: p.word().text)
        p.done()
        skip.extend(n for n in names if n not in skip)
        return "set skip on {" + "".join(f" {n}" for n in names) + " }"
    if what.text == "block-policy":
        policy = p.word()
        if policy.text not in ("drop", "return"):
            raise _Error(policy.line)
        p.done()
        state["block_policy"] = policy.text
        return f"set block-policy {policy.text}"
    if what.text == "reassemble":
        yes = p.word()
        if yes.text not in ("yes", "no"):
            raise _Error(yes.line)
        nodf = p.next().text == "no-df" if p.at("no-df") else False
        p.done()
        return f"set reassemble {yes.text} {'no-df' if nodf else ''}"
    if what.text == "loginterface":
        ifname = p.word().text
        p.done()
        return f"set loginterface {ifname}"
    if what.text == "debug":
        level = p.word()
        if level.text not in LOG_LEVELS:
            raise _Error(level.line, f'unknown debug level "{level.text}"')
        p.done()
        state["debug"] = level.text
        return f"set debug {level.text}"
    if what.text == "limit":
        name = p.word()
        number = p.word()
        if name.text not in LIMIT_NAMES or not number.text.isdigit():
            raise _Error(name.line)
        p.done()
        limits[name.text] = int(number.text)
        return f"set limit {name.text} {number.text}"
    raise _Error(what.line)


def compile_pfconf(text: str, filename: str, net: Net) -> Compiled:
    """Parse pf.conf text; raise PfConfError with yyerror-style lines on errors.

    Inline anchors follow parse.y rev 1.719 pfa_anchor: `anchor [NAME] ... {`
    must end its line, the rules follow one a line, and `}` closes the block
    on a line of its own; inside, only rules and anchors (pfa_anchorlist: no
    `set`, no macros).  Nested anchors are allowed.
    """
    macros: dict[str, str] = {}
    printed: list[str] = []
    errors: list[str] = []
    limits: dict[str, int] = {}
    skip: list[str] = []
    options: dict[str, str] = {"block_policy": "drop"}
    # Open blocks: (the anchor rule, its first line, its entries, names used inside).
    top: list[Entry] = []
    stack: list[tuple[_Rule | None, list[Entry], set[str]]] = [(None, top, set())]
    last = 0
    for lineno, lex in _statements(text, macros):
        last = lineno
        try:
            toks = lex()
            if not toks:
                continue
            head = toks[0]
            inside = len(stack) > 1
            if len(toks) == 1 and head.kind == "p" and head.text == "}":
                if not inside:
                    raise _Error(head.line)
                rule, entries, _ = stack.pop()
                if rule is not None:    # None: its opening line already failed
                    _close_anchor(rule, entries, stack[-1][1], stack[-1][2], head.line)
            elif len(toks) >= 2 and toks[1].text == "=" and toks[1].kind == "p" \
                    and head.kind == "w":
                if inside:
                    raise _Error(head.line)
                value = " ".join(t.text for t in toks[2:])
                if not toks[2:]:
                    raise _Error(head.line)
                printed.append(f'{head.text} = "{value}"')
                macros[head.text] = value
            elif head.kind == "w" and head.text == "set":
                if inside:
                    raise _Error(head.line)
                printed.append(_option(_Parser(toks, net, "drop"), limits, options, skip))
            elif head.kind == "w" and head.text == "anchor":
                opens = toks[-1].kind == "p" and toks[-1].text == "{"
                body = toks[:-1] if opens else toks
                if body and body[-1].kind == "p" and body[-1].text == "{":
                    raise _Error(head.line)
                try:
                    rule = _Parser(body, net, options["block_policy"]).anchor_rule()
                except _Error:
                    if opens:           # yacc resynchronises at the newline: the block
                        stack.append((None, [], set()))   # still nests
                    raise
                if opens:
                    stack.append((rule, [], set()))
                else:
                    if not rule.anchor:
                        raise _Error(head.line, "anchors without explicit rules must "
                                                "specify a name")
                    _close_anchor(rule, [], stack[-1][1], stack[-1][2], head.line,
                                  inline=False)
            elif head.kind == "w" and head.text in ("pass", "block", "match"):
                parser = _Parser(toks, net, options["block_policy"])
                stack[-1][1].extend(_expand(parser.rule()))
            else:
                raise _Error(head.line)
        except _Error as exc:
            errors.append(f"{filename}:{exc.lineno or lineno}: {exc.message}")
    if len(stack) > 1 and not errors:
        errors.append(f"{filename}:{last}: syntax error")
    if errors:
        raise PfConfError(errors, printed)
    loaded: list[Entry] = ([{"skip": skip}] if skip else []) + top
    return Compiled(tuple(printed), tuple(loaded), limits, options.get("debug"))


def _close_anchor(rule: _Rule, children: list[Entry], into: list[Entry], names: set[str],
                  line: int, inline: bool = True) -> None:
    """anchorrule's action (parse.y rev 1.719), run when the rule is complete."""
    if inline and rule.anchor and "/" in rule.anchor:
        raise _Error(line, "anchor paths containing '/' cannot be used for inline anchors.")
    if inline and rule.anchor:
        if rule.anchor in names:
            raise _Error(line, f"inline anchor '{rule.anchor}' already exists")
        names.add(rule.anchor)
    if rule.keep is not None:
        raise _Error(line, "cannot specify state handling on anchors")
    into.extend(_expand(rule, children))


# --- what pfctl prints from the loaded entries ------------------------------------

def rule_lines(entries: Sequence[Entry], recurse: bool, nvf: bool = False) -> list[str]:
    """The rule lines of `pfctl -sr` (recurse False), `pfctl -a '*' -sr` (True) or -nvf.

    sbin/pfctl/pfctl.c rev 1.397 pfctl_show_rules(): INDENT(depth) is two
    blanks a level; an anchor rule is followed by ` {`, its rules and `}` when
    its name starts with `_` (an unnamed brace anchor) or with `-a '*'`
    (PF_OPT_RECURSE); otherwise the line ends.  pfctl_load_ruleset() (-nvf)
    prints ` {` ... `}` only for an anchor with rules: an empty one ends its line.
    """
    out: list[str] = []

    def walk(items: Sequence[Entry], depth: int) -> None:
        for e in items:
            if "skip" in e:
                continue
            line = "  " * depth + e["text"]
            kids: list[Entry] | None = e.get("children")
            expand = kids is not None and (recurse or e["anchor"] == "")
            if expand and nvf and not kids:
                expand = False
            if kids is None or not expand:
                out.append(line)
                continue
            out.append(line + " {")
            walk(kids, depth + 1)
            out.append("  " * depth + "}")

    walk(entries, 0)
    return out


def skipped(entries: Sequence[Entry]) -> list[str]:
    """The `set skip on` names of the loaded ruleset, in the order given."""
    return [n for e in entries if "skip" in e for n in e["skip"]]


# --- the demo kernel: pf's decision for one packet ----------------------------------

# Cloned interfaces join the group named after their driver (sys/net/if.c
# if_clone_create()); pppx(4) adds its units to group `pppx` itself.  The
# demo's pppac0 has none (derived ifconfig sample of pppac0 prints no groups).
_DRIVER_GROUPS = ("lo", "enc", "pflog", "pppx")


def groups_of(net: Net, ifname: str) -> set[str]:
    """The groups IFNAME is in: `all`, its driver's, and the Net's (egress, ...)."""
    found = {"all", *net.memberships.get(ifname, ())}
    driver = re.sub(r"[0-9]+$", "", ifname)
    if driver in _DRIVER_GROUPS and driver != ifname:
        found.add(driver)
    return found


@dataclass(frozen=True)
class Packet:
    """The first packet of a connection, as the demo kernel filters it."""

    id: str
    direction: str                  # 'in' | 'out'
    ifname: str
    proto: int
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    local: bool = True              # to a socket on this host (root's), or forwarded


@dataclass(frozen=True)
class KernelVerdict:
    passed: bool
    nat: bool                       # a nat-to applied (out packets)
    rule: str                       # the deciding rule's text, "" for default or skip


def decide(entries: Sequence[Entry], net: Net, pkt: Packet) -> KernelVerdict:
    """pf_test_rule() of the demo: the last matching rule decides unless `quick`.

    pf.conf(5): `match` rules never decide (their nat-to applies); an anchor
    whose criteria match evaluates its rules in place and a `quick` rule inside
    ends the evaluation; a `quick` anchor ends it when a rule inside matched;
    with no deciding rule the packet passes; `set skip` interfaces (and members
    of skipped groups, pf_if.c rev 1.112 pfi_xcommit()) are not filtered at all.
    Tables are empty and uids of forwarded packets unknown (pf.conf(5) `user`).
    """
    groups = groups_of(net, pkt.ifname)
    skip = set(skipped(entries))
    if pkt.ifname in skip or groups & skip:
        return KernelVerdict(True, False, "")
    deciding: Entry | None = None
    nat = False
    tag: str | None = None

    def walk(items: Sequence[Entry]) -> tuple[bool, bool]:
        """(stop evaluating, some rule in ITEMS matched)."""
        nonlocal deciding, nat, tag
        matched = False
        for e in items:
            if "skip" in e or not _matches(e["m"], pkt, groups, net, tag):
                continue
            m = e["m"]
            matched = True
            if m["action"] == "anchor":
                stop, inner = walk(e["children"] or [])
                if stop or (m["quick"] and inner):
                    return True, True
                continue
            if m["tag"]:
                tag = m["tag"]
            if m["action"] == "match":
                nat = nat or m["nat"]
                continue
            deciding = e
            if m["quick"]:
                return True, True
        return False, matched

    walk(entries)
    if deciding is None:
        return KernelVerdict(True, nat, "")
    return KernelVerdict(deciding["m"]["action"] == "pass", nat or deciding["m"]["nat"],
                         deciding["text"])


def _addr_in(spec: JsonObject, addr: str, net: Net) -> bool:
    kind, value = spec["kind"], spec["value"]
    ip = ipaddress.ip_address(addr)
    if kind == "any":
        hit = True
    elif kind == "net":
        hit = ip in ipaddress.ip_network(value)
    elif kind == "dyn":
        hit = any(ip == ipaddress.ip_address(a) for a in net.lookup(value))
    else:                           # <table> (none defined in the demo), no-route
        hit = False
    return hit != bool(spec["neg"])


def _port_ok(spec: list[Any] | None, port: int) -> bool:
    if spec is None:
        return True
    op: str
    low: int
    high: int
    op, low, high = spec
    return {"=": port == low, "!=": port != low, "<": port < low, "<=": port <= low,
            ">": port > low, ">=": port >= low, ":": low <= port <= high,
            "><": low < port < high, "<>": port < low or port > high}[op]


def _matches(m: JsonObject, pkt: Packet, groups: set[str], net: Net, tag: str | None) -> bool:
    if m["dir"] and m["dir"] != pkt.direction:
        return False
    if m["ifname"] is not None:
        on = m["ifname"] in ("any", pkt.ifname) or m["ifname"] in groups
        if on == m["ifnot"]:
            return False
    if m["af"] not in (0, ipaddress.ip_address(pkt.src).version):
        return False
    if m["proto"] and m["proto"] != pkt.proto:
        return False
    if not (_addr_in(m["src"], pkt.src, net) and _addr_in(m["dst"], pkt.dst, net)):
        return False
    if not (_port_ok(m["sport"], pkt.sport) and _port_ok(m["dport"], pkt.dport)):
        return False
    if m["uid"] is not None and (not pkt.local or m["uid"] != "0"):
        return False                # forwarded: uid unknown; local sockets are root's
    return not (m["tagged"] and m["tagged"] != tag)


# A client behind NAT (RFC 5737 TEST-NET-2) and an internet host it browses.
CLIENT = "198.51.100.23"
INTERNET_HOST = "203.0.113.80"


def client_packets(egress_ifname: str, egress_address: str, vpn_network: str,
                   ppp_ifname: str) -> list[Packet]:
    """The first packet of each flow a client's connection needs (see checks/pfpath.py)."""
    vpn = ipaddress.ip_network(vpn_network, strict=False)
    inside = str(next(vpn.hosts()) + 1)
    return [
        Packet("ike", "in", egress_ifname, 17, CLIENT, egress_address, 500, 500),
        Packet("nat-t", "in", egress_ifname, 17, CLIENT, egress_address, 4500, 4500),
        Packet("esp", "in", egress_ifname, 50, CLIENT, egress_address),
        Packet("l2tp", "in", "enc0", 17, CLIENT, egress_address, 1701, 1701),
        Packet("ppp-in", "in", ppp_ifname, TCP, inside, INTERNET_HOST, 50123, 443,
               local=False),
        Packet("nat-out", "out", egress_ifname, TCP, inside, INTERNET_HOST, 50123, 443,
               local=False),
    ]


# The flows without which no session comes up: what pf does with a session's own
# traffic (in on pppx, NAT out) decides whether the client reaches anything, not
# whether it connects.
CONNECTION_FLOWS = frozenset({"ike", "nat-t", "esp", "l2tp"})


def path_blocked(entries: Sequence[Entry], net: Net, egress_ifname: str, egress_address: str,
                 vpn_network: str, ppp_ifname: str,
                 flows: frozenset[str] | None = None) -> tuple[str, str] | None:
    """(the flow, why) pf stops a client's flow (of `flows`, default all), or None.

    The nat-out flow also needs a nat-to.
    """
    for pkt in client_packets(egress_ifname, egress_address, vpn_network, ppp_ifname):
        if flows is not None and pkt.id not in flows:
            continue
        v = decide(entries, net, pkt)
        if not v.passed:
            return pkt.id, f"pf blocks {pkt.id} ({v.rule})"
        if pkt.id == "nat-out" and not v.nat:
            return pkt.id, "pf passes the clients' traffic out without nat-to"
    return None
