"""/etc/npppd/npppd.conf: the IPCP address pools npppd hands to clients.

    ipcp IPCP {
            pool-address 10.0.0.2-10.0.0.254
            dns-servers 8.8.8.8
    }

npppd.conf(5) and usr.sbin/npppd/npppd/parse.y (rev 1.28): `ipcp NAME { ... }`
holds `pool-address STRING [for dynamic | for static]` lines, each STRING an
address range `A-B`, a network `A/N` or one address, added to the pool by
addr_range.c in_addr_range_list_add().  The lexer is the base system's: `#`
starts a comment outside quotes, a backslash joins the next line, strings may
be quoted.  Only the pools are read: the rest of the file is npppd's business.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import ParseError

_Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class NpppdPools:
    """The pool-address lines of every ipcp block, as written and as networks."""

    ranges: tuple[str, ...]          # "10.0.0.2-10.0.0.254", in file order
    networks: tuple[str, ...]        # the same addresses as collapsed CIDR blocks

    def covering(self) -> _Net | None:
        """The smallest network holding every pool address (None: no pool)."""
        if not self.networks:
            return None
        nets = [ipaddress.IPv4Network(n) for n in self.networks]
        first = min(n.network_address for n in nets)
        last = max(n.broadcast_address for n in nets)
        net = ipaddress.IPv4Network((first, 32))
        while last not in net:
            net = net.supernet()
        return net


def _tokens(text: str, path: str) -> list[tuple[int, str]]:
    """(line number, token) pairs: words, quoted strings, `{` and `}`."""
    out: list[tuple[int, str]] = []
    lineno, i, n = 1, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i, lineno = i + 2, lineno + 1
        elif c == "\n":
            out.append((lineno, "\n"))
            i, lineno = i + 1, lineno + 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{}":
            out.append((lineno, c))
            i += 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0 or "\n" in text[i:end]:
                raise ParseError(path, "unterminated quoted string", lineno)
            out.append((lineno, text[i + 1:end]))
            i = end + 1
        else:
            start = i
            while i < n and text[i] not in " \t\r\n{}#\"":
                i += 1
            out.append((lineno, text[start:i]))
    return out


def _networks(spec: str, path: str, lineno: int | None) -> list[_Net]:
    try:
        if "-" in spec:
            low, high = (ipaddress.IPv4Address(p) for p in spec.split("-", 1))
            if high < low:
                raise ValueError("the range ends before it starts")
            return list(ipaddress.summarize_address_range(low, high))
        return [ipaddress.IPv4Network(spec, strict=False)]
    except ValueError as e:
        raise ParseError(path, f"pool-address {spec[:40]!r} is not an address range "
                               f"({e})", lineno) from None


def pools_of(ranges: tuple[str, ...], path: str = "/etc/npppd/npppd.conf") -> NpppdPools:
    """NpppdPools of pool-address strings already read (root's record for serve)."""
    nets = [n for spec in ranges for n in _networks(spec, path, None)]
    return NpppdPools(ranges, tuple(str(n) for n in ipaddress.collapse_addresses(nets)))


def parse_pools(text: str, path: str = "/etc/npppd/npppd.conf") -> NpppdPools:
    """Every `pool-address` of every `ipcp` block; ParseError for one npppd would refuse."""
    tokens = _tokens(text, path)
    ranges: list[str] = []
    nets: list[_Net] = []
    depth, in_ipcp = 0, False
    for k, (lineno, tok) in enumerate(tokens):
        if tok == "{":
            depth += 1
            in_ipcp = depth == 1 and _statement_head(tokens, k) == "ipcp"
        elif tok == "}":
            depth -= 1
            if depth < 0:
                raise ParseError(path, "`}` without a block", lineno)
            in_ipcp = in_ipcp and depth > 0
        elif tok == "pool-address" and in_ipcp:
            spec = tokens[k + 1][1] if k + 1 < len(tokens) else "\n"
            if spec in ("\n", "{", "}"):
                raise ParseError(path, "pool-address without an address", lineno)
            ranges.append(spec)
            nets.extend(_networks(spec, path, lineno))
    if depth:
        raise ParseError(path, "a block is not closed", tokens[-1][0] if tokens else None)
    return NpppdPools(tuple(ranges), tuple(str(n) for n in ipaddress.collapse_addresses(nets)))


def _statement_head(tokens: list[tuple[int, str]], brace: int) -> str:
    """The first word of the statement a `{` opens (`ipcp` of `ipcp IPCP {`)."""
    k = brace - 1
    while k >= 0 and tokens[k][1] not in ("\n", "{", "}"):
        k -= 1
    return tokens[k + 1][1] if k + 1 < brace else ""
