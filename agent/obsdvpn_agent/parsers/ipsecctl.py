"""Parser of `ipsecctl -s` output: the kernel's IPsec flows (SPD) and SAs (SAD).

    $ ipsecctl -sa
    FLOWS:
    flow esp in proto udp from A.B.C.D port l2tp to W.X.Y.Z peer A.B.C.D srcid my.client.fqdn dstid A.B.C.D/32 type use
    flow esp out proto udp from W.X.Y.Z to A.B.C.D port l2tp peer A.B.C.D srcid my.client.fqdn dstid A.B.C.D/32 type require

    SAD:
    esp transport from A.B.C.D to W.X.Y.Z spi 0x0d16ad1c auth hmac-sha1 enc aes

`-sa` is `-s all` (prefix match on "all"): titles, "No flows"/"No entries" when
empty.  `-sf` and `-ss` print the bare lines and nothing at all when empty.

Formats, as read in openbsd/src:
- sbin/ipsecctl/ipsecctl.c rev 1.87: ipsecctl_print_flow(), ipsecctl_print_sa(),
  ipsecctl_print_sabundle(), ipsecctl_print_rule() (`@N ` with -vv),
  ipsecctl_show() (titles), the direction/flowtype/satype/tmode/auth tables.
- sbin/ipsecctl/pfkdump.c rev 1.58: pfkey_print_sa() (-s sa goes through
  ipsecctl_print_rule(), then with -v one `TAB name: ...` line per PF_KEY
  extension, print_ext()), print_sa() (`state ... flags 0x..<...>`),
  print_counter(), ext_types[].
Key material (`-k`: ` \\` + TAB `authkey 0x..`, `key_auth: bits N: ..`) is
read past and never kept, not even in error messages.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from . import ParseError

# The tables printed by ipsecctl.c (satype[], direction[], flowtype[], tmode[], auth[]).
SATYPES = frozenset({"esp", "ah", "ipcomp", "tcpmd5", "ipip"})
DIRECTIONS = frozenset({"in", "out"})
FLOW_TYPES = frozenset({"use", "acquire", "require", "deny", "bypass", "dontacq"})
MODES = frozenset({"transport", "tunnel"})
FLOW_AUTHS = frozenset({"psk", "rsa"})
# pfkdump.c states[] (lookup_name() prints "unknown" for anything else).
SA_STATES = frozenset({"larval", "mature", "dying", "dead", "unknown"})
# pfkdump.c ext_types[] of rev 1.58, plus the credential names older revisions had.
EXTENSIONS = frozenset({
    "reserved", "sa", "lifetime_cur", "lifetime_hard", "lifetime_soft",
    "address_src", "address_dst", "address_proxy", "key_auth", "key_encrypt",
    "identity_src", "identity_dst", "sensitivity", "proposal", "supported_auth",
    "supported_encrypt", "spirange", "src_mask", "dst_mask", "protocol",
    "flow_type", "src_flow", "dst_flow", "sa2", "dst2", "policy",
    "supported_comp", "udpencap", "lifetime_lastuse", "tag", "rdomain", "replay",
    "mtu", "tap", "satype2", "counter", "interface",
    "remote_auth", "local_cred", "remote_cred",
})
KEY_WORDS = frozenset({"authkey", "enckey"})

# Numbers are [0-9]: \d would also take '١٢٣', which ipsecctl never prints.
_RULE_NUMBER = re.compile(r"@[0-9]+(?:,[0-9]+)* ")    # print_rule(), -vv (and -c)
_EXT_LINE = re.compile(r"\t([a-z0-9_]+): ?(.*)")
_STATE_LINE = re.compile(r"\t\tstate (\S+) replay [0-9]+ flags (\S*?)<([^>]*)>")
# Redaction keeps the Unicode \s and \d on purpose: it must rather hide too much.
_SECRET = re.compile(r"((?:authkey|enckey)\s+|key_(?:auth|encrypt):\s*bits\s+\d+:\s*)\S+")


class IpsecFlow(NamedTuple):
    """One SPD entry: `flow esp in from 10.0.2.0/24 to 10.0.1.0/24 peer 198.51.100.1 type use`.

    A NamedTuple, not a frozen dataclass like the other records: a host with
    10,000 sessions has 20,000 flows and 20,000 SAs, which a tuple builds in a
    seventh of the time and holds in a third of the memory (bench/collection.py).
    """

    satype: str
    direction: str                # 'in' | 'out'
    proto: str | None             # protocol name or number as printed ('udp', '17')
    src: str                      # as printed: host without /32, net with /N
    src_port: str | None          # service name or number ('l2tp', '1701')
    dst: str
    dst_port: str | None
    local: str | None
    peer: str | None
    srcid: str | None
    dstid: str | None
    auth: str | None              # 'psk' | 'rsa'
    flow_type: str                # use acquire require deny bypass dontacq


class IpsecSa(NamedTuple):
    """One SAD entry (a NamedTuple for the reason IpsecFlow is one).

    `esp tunnel from 192.0.2.1 to 198.51.100.1 spi 0xabb5968a auth hmac-sha2-256 enc aes-256`
    """

    satype: str
    mode: str | None              # None for tcpmd5/ipip and old ipsecctl without the word
    src: str
    dst: str
    spi: str                      # as printed ('0x0d16ad1c')
    auth: str | None
    enc: str | None
    comp: str | None
    udpencap: bool | None         # NAT-T; None when no -v detail was printed
    state: str | None             # from the -v `sa:` extension; None when not shown

    @property
    def established(self) -> bool:
        """Whether the SA carries its transforms: keyed, not a larval SADB_GETSPI SA.

        isakmpd reserves an SPI with SADB_GETSPI before quick mode ends; the
        kernel then holds a larval SA with no algorithms, which pfkdump.c
        rev 1.58 pfkey_print_sa() prints without `auth`/`enc` (r.xfs stays
        NULL when sadb_sa_encrypt and sadb_sa_auth are 0), and with -v as
        `state larval`.  Such an SA protects nothing.  An ESP SA always has
        an encryption algorithm once keyed (`enc null` included), AH an
        authentication one.
        """
        if self.state is not None and self.state not in ("mature", "dying"):
            return False
        if self.satype == "esp":
            return self.enc is not None
        if self.satype == "ah":
            return self.auth is not None
        return False              # ipcomp, tcpmd5, ipip: no IPsec protection by themselves


@dataclass(frozen=True)
class IpsecState:
    """What `ipsecctl -sa` (or -sf / -ss) showed."""

    flows: tuple[IpsecFlow, ...]
    sas: tuple[IpsecSa, ...]
    unknown_lines: int

    def peers_with_sa(self) -> frozenset[str]:
        """Addresses at either end of an SA."""
        return frozenset(a for sa in self.sas for a in (sa.src, sa.dst))

    def flow_peers(self) -> frozenset[str]:
        """The `peer` addresses of the flows (bypass/deny flows have none)."""
        return frozenset(f.peer for f in self.flows if f.peer is not None)

    def remote_peers(self) -> frozenset[str]:
        """Flow peers that have an SA: the remote ends, without this host's own address."""
        return self.flow_peers() & self.peers_with_sa()

    def protected_peers(self) -> frozenset[str]:
        """Flow peers with an established ESP/AH SA in each direction.

        Only these peers' traffic is protected: a larval SA (no transforms)
        does not count, nor does an SA to an address no flow names as its
        peer, nor a single direction (isakmpd installs both SAs of a
        quick mode together; one alone cannot carry a session).
        """
        keyed = [sa for sa in self.sas if sa.established]
        inbound = frozenset(sa.src for sa in keyed)
        outbound = frozenset(sa.dst for sa in keyed)
        return self.flow_peers() & inbound & outbound


def parse_sa(text: str, command: str = "ipsecctl -sa") -> IpsecState:
    """Parse `ipsecctl -sa` (titled), or bare `-sf` / `-ss` lines (empty text = nothing)."""
    return _Parser(text, command, titles=True, kinds=("flow", "sa")).run()


def parse_flows(text: str, command: str = "ipsecctl -sf") -> IpsecState:
    """Parse `ipsecctl -sf`: flow lines only, no titles."""
    return _Parser(text, command, titles=False, kinds=("flow",)).run()


def parse_sas(text: str, command: str = "ipsecctl -ss") -> IpsecState:
    """Parse `ipsecctl -ss` / `-s sa` (with any -v detail or -k key lines): SA lines only."""
    return _Parser(text, command, titles=False, kinds=("sa",)).run()


def _redact(line: str) -> str:
    return _SECRET.sub(r"\1<key>", line)


# The usual lines, read by one regular expression each.  _Parser reads every
# line as the grammar allows with a _Cursor; that costs a method call per word
# (0.3 s for the 40,000 lines of 10,000 sessions), so the lines ipsecctl prints
# for every L2TP client are matched whole first, their groups in the order of
# the record's fields.  A line these do not match goes to the _Cursor, which
# reads or rejects it, so every ParseError stays the _Cursor's; a line they
# match is one the _Cursor reads to the same record, because each pattern
# mirrors it step by step:
# - words are \S+ separated by single blanks (\S is exactly what str.split()
#   does not split on), so the groups are the words the _Cursor sees;
# - `(?: keyword (...))?+` is possessive: once the keyword is there it takes
#   the next word whatever it is, and never gives it back, as optional() does;
# - _flow() takes a `psk`/`rsa` before `type` as the auth whatever precedes
#   it, so no other group may take that word (the lookahead in _VALUE); an
#   identity is one word here (a DN with blanks goes to the _Cursor), and a
#   srcid cannot be the word `dstid`, which would end it empty;
# - _sa() takes auth, enc and comp in any order, each once, and keys or a
#   ` \` continuation: only the order ipsecctl prints, without keys, is here.
def _one_of(words: frozenset[str], group: str = "(") -> str:
    return group + "|".join(sorted(words)) + ")"


_VALUE = rf"(?!{_one_of(FLOW_AUTHS, '(?:')} type \S+\Z)(\S+)"
_USUAL_FLOW = re.compile(
    rf"flow {_one_of(SATYPES)} {_one_of(DIRECTIONS)}"
    rf"(?: proto {_VALUE})?+ from {_VALUE}(?: port {_VALUE})?+ to {_VALUE}(?: port {_VALUE})?+"
    rf"(?: local {_VALUE})?+(?: peer {_VALUE})?+(?: srcid (?!dstid ){_VALUE})?+"
    rf"(?: dstid {_VALUE})?+(?: {_one_of(FLOW_AUTHS)})?+ type {_one_of(FLOW_TYPES)}")
_USUAL_SA = re.compile(
    rf"{_one_of(SATYPES)}(?: {_one_of(MODES)})?+ from (\S+) to (\S+) spi (\S+)"
    r"(?: auth (\S+))?+(?: enc (\S+))?+(?: comp (\S+))?+")


class _Cursor:
    """Walks the blank-separated words of one rule line."""

    def __init__(self, words: list[str], fail: Callable[[str], ParseError]) -> None:
        self.words, self.pos, self.fail = words, 0, fail

    def peek(self) -> str | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def take(self, what: str) -> str:
        word = self.peek()
        if word is None:
            raise self.fail(f"line ends where {what} was expected")
        self.pos += 1
        return word

    def expect(self, keyword: str) -> None:
        word = self.take(f"`{keyword}`")
        if word != keyword:
            raise self.fail(f"expected `{keyword}`, found `{word}`")

    def optional(self, keyword: str) -> str | None:
        if self.peek() != keyword:
            return None
        self.pos += 1
        return self.take(f"a value after `{keyword}`")

    def choice(self, allowed: frozenset[str], what: str) -> str:
        word = self.take(what)
        if word not in allowed:
            raise self.fail(f"unknown {what} `{word}`")
        return word


class _Parser:
    def __init__(self, text: str, command: str, titles: bool, kinds: tuple[str, ...]) -> None:
        self.lines = text.splitlines()
        self.command, self.titles, self.kinds = command, titles, kinds
        self.flows: list[IpsecFlow] = []
        self.sas: list[IpsecSa] = []
        self.unknown = 0
        self.shared: dict[str | None, str | None] = {}
        self.lineno = 0
        self.last: str | None = None       # kind of the record detail lines belong to
        self.ext_known = False              # whether the last `TAB name:` line was known

    def fail(self, reason: str) -> ParseError:
        line = self.lines[self.lineno - 1] if self.lineno else None
        return ParseError(self.command, reason, self.lineno or None,
                          _redact(line) if line is not None else None)

    def run(self) -> IpsecState:
        first = next(((n, line) for n, line in enumerate(self.lines, 1) if line.strip()), None)
        if self.titles and first and first[1] == "FLOWS:":
            self._titled()
        else:
            self._records(self.lines, 0, self.kinds)
            if first and not self.flows and not self.sas:
                self.lineno = first[0]
                raise self.fail("no flow or SA line in the output")
        return IpsecState(tuple(self.flows), tuple(self.sas), self.unknown)

    def _titled(self) -> None:
        # ipsecctl_show(): "FLOWS:", flows or "No flows", "\n" + "SAD:", SAs or "No entries".
        try:
            sad = self.lines.index("SAD:")
        except ValueError:
            self.lineno = len(self.lines)
            raise self.fail("no `SAD:` section after `FLOWS:`: output truncated?") from None
        start = self.lines.index("FLOWS:")
        for title, (first, end), kind, empty in (
                ("FLOWS:", (start + 1, sad), "flow", "No flows"),
                ("SAD:", (sad + 1, len(self.lines)), "sa", "No entries")):
            section = self.lines[first:end]
            # The first two non-blank lines tell an empty section from a filled one.
            filled = [line for line in itertools.islice(
                (line for line in section if line.strip()), 2)]
            if filled == [empty]:
                continue
            if not filled:
                self.lineno = first
                raise self.fail(f"`{title}` is followed by neither records nor `{empty}`")
            self.last = None
            self._records(section, first, (kind,))

    def _records(self, lines: list[str], offset: int, kinds: tuple[str, ...]) -> None:
        # One string object per distinct word: the host's address, `esp`, a
        # peer's address recur in every flow and SA of its session (a third
        # of the parsed records' memory at 10,000 sessions).
        shared = self.shared.setdefault
        continued = False
        # The usual lines first, in this loop: a method call per line is a
        # tenth of the time of 10,000 sessions.  Neither is blank or indented.
        usual_flow = _USUAL_FLOW.fullmatch if "flow" in kinds else None
        usual_sa = _USUAL_SA.fullmatch if "sa" in kinds else None
        for index, line in enumerate(lines):
            if continued:
                self.lineno = offset + index + 1
                continued = self._key_line(line, continuation=True)
            elif usual_flow and (usual := usual_flow(line)):
                self.last, self.ext_known = "flow", False
                words = usual.groups()
                self.flows.append(IpsecFlow._make(map(shared, words, words)))
            elif usual_sa and (usual := usual_sa(line)):
                self.last, self.ext_known = "sa", False
                words = usual.groups()
                self.sas.append(IpsecSa._make((*map(shared, words, words), None, None)))
            elif not line.strip():
                continue
            else:
                self.lineno = offset + index + 1
                if line.startswith("\t"):
                    continued = self._detail(line)
                else:
                    continued = self._rule(line, kinds)
        if continued:
            raise self.fail("output ends inside a ` \\` continuation: truncated?")

    def _rule(self, line: str, kinds: tuple[str, ...]) -> bool:
        match = _RULE_NUMBER.match(line) if line.startswith("@") else None
        words = line[match.end() if match else 0:].split()
        first = words[0] if words else ""
        kind = "flow" if first == "flow" else "sa" if first in SATYPES else None
        if kind is None:
            # A line starting with a flow or SA word is none of these, so they are
            # tested only here, off the path every record line takes.
            if line.startswith(("C set ", "C add ", "C rms ", "C rmv ")):
                raise self.fail("isakmpd FIFO command: this is `ipsecctl -nv -f` output, "
                                "not `ipsecctl -s` output")
            if line.startswith("unknown ext: ") and self.last == "sa":
                self.unknown += 1                     # pfkdump.c print_ext(), unknown type
                return False
            if line.startswith("[bundle ") and self.last == "sa":
                return False                          # ipsecctl_print_sabundle(): SA grouping
            raise self.fail("neither a flow nor an SA line")
        if kind not in kinds:
            raise self.fail(f"{'a flow' if kind == 'flow' else 'an SA'} line is not "
                            f"expected here")
        self.last, self.ext_known = kind, False
        if kind == "flow":
            self.flows.append(self._flow(words))
            return False
        sa, continued = self._sa(words)
        self.sas.append(sa)
        return continued

    def _flow(self, words: list[str]) -> IpsecFlow:
        # `type FLOWTYPE` is always printed last (ipsecctl_print_flow()).
        if len(words) < 2 or words[-2] != "type":
            raise self.fail("flow line does not end in `type FLOWTYPE`")
        flow_type = words[-1]
        if flow_type not in FLOW_TYPES:
            raise self.fail(f"unknown flow type `{flow_type}`")
        body = words[:-2]
        auth = body.pop() if body and body[-1] in FLOW_AUTHS else None
        c = _Cursor(body, self.fail)
        c.expect("flow")
        satype = c.choice(SATYPES, "SA type")
        direction = c.choice(DIRECTIONS, "direction")
        proto = c.optional("proto")
        c.expect("from")
        src = c.take("source address")
        src_port = c.optional("port")
        c.expect("to")
        dst = c.take("destination address")
        dst_port = c.optional("port")
        local = c.optional("local")
        peer = c.optional("peer")
        srcid = self._identity(c, "srcid", stop="dstid")
        dstid = self._identity(c, "dstid", stop=None)
        if c.peek() is not None:
            raise self.fail(f"unknown keyword `{c.peek()}` in flow line")
        return IpsecFlow(satype, direction, proto, src, src_port, dst, dst_port,
                         local, peer, srcid, dstid, auth, flow_type)

    def _identity(self, c: _Cursor, keyword: str, stop: str | None) -> str | None:
        # Identities are printed with %s and an ASN.1 DN may hold blanks, so an id
        # runs up to the next id keyword or the end of the line.
        if c.peek() != keyword:
            return None
        c.pos += 1
        words = []
        while c.peek() is not None and c.peek() != stop:
            words.append(c.take("an identity"))
        if not words:
            raise self.fail(f"no identity after `{keyword}`")
        return " ".join(words)

    def _sa(self, words: list[str]) -> tuple[IpsecSa, bool]:
        c = _Cursor(words, self.fail)
        satype = c.take("SA type")
        # Old ipsecctl printed no mode at all; tcpmd5/ipip never have one.
        mode = c.take("mode") if c.peek() in MODES else None
        c.expect("from")
        src = c.take("source address")
        c.expect("to")
        dst = c.take("destination address")
        c.expect("spi")
        spi = c.take("SPI")
        transforms: dict[str, str | None] = {"auth": None, "enc": None, "comp": None}
        continued = False
        while (word := c.peek()) is not None:
            c.pos += 1
            if word in transforms and transforms[word] is None:
                transforms[word] = c.take(f"a name after `{word}`")
            elif word in KEY_WORDS:
                c.take(f"a key after `{word}`")        # tcpmd5 prints keys inline
            elif word == "\\" and c.peek() is None:
                continued = True
            else:
                raise self.fail(f"unknown keyword `{word}` in SA line")
        return IpsecSa(satype, mode, src, dst, spi, transforms["auth"], transforms["enc"],
                       transforms["comp"], None, None), continued

    def _key_line(self, line: str, continuation: bool) -> bool:
        words = line.split()
        if not line.startswith("\t") or not words or words[0] not in KEY_WORDS:
            if continuation:
                raise self.fail("expected a TAB `authkey`/`enckey` line after ` \\`")
            return False
        if len(words) == 3 and words[2] == "\\":
            return True
        if len(words) != 2:
            raise self.fail("malformed key line")
        return False

    def _detail(self, line: str) -> bool:
        words = line.split()
        if self.last == "sa" and words and words[0] in KEY_WORDS:
            return self._key_line(line, continuation=False)   # old ipsecctl: no ` \`
        if self.last != "sa":
            self.unknown += 1
            return False
        if line.startswith("\t\t"):
            state = _STATE_LINE.match(line)
            if state:
                self._sa_state(state)
            elif not self.ext_known:
                self.unknown += 1
            return False
        ext = _EXT_LINE.fullmatch(line.rstrip())
        name = ext.group(1) if ext else None
        self.ext_known = name in EXTENSIONS
        if not self.ext_known:
            self.unknown += 1
        elif name == "udpencap":
            self.sas[-1] = self.sas[-1]._replace(udpencap=True)
        return False

    def _sa_state(self, match: re.Match[str]) -> None:
        state, flags = match.group(1), match.group(3).split(",")
        if state not in SA_STATES:
            raise self.fail(f"unknown SA state `{state}`")
        sa = self.sas[-1]
        self.sas[-1] = sa._replace(state=state,
                               udpencap=bool(sa.udpencap) or "udpencap" in flags)


# --- `ipsecctl -nvf /etc/ipsec.conf`: what the ike rules would tell isakmpd -------------
#
#     $ ipsecctl -nvf /etc/ipsec.conf
#     C set [Phase 1]:Default=peer-default force
#     C set [peer-default]:Phase=1 force
#     C set [peer-default]:Authentication=<the PSK, in clear> force
#     C set [peer-default]:Configuration=phase1-peer-default force
#     C set [phase1-peer-default]:EXCHANGE_TYPE=ID_PROT force
#     C add [phase1-peer-default]:Transforms=phase1-transform-peer-default-PRE_SHARED-SHA-AES128,128:256-MODP_3072 force
#     C set [phase1-transform-...]:GROUP_DESCRIPTION=MODP_3072 force
#     ...
#     C add [Phase 2]:Passive-Connections=from-192.0.2.1=17-to-0.0.0.0/0=17:1701
#
# As read in openbsd/src sbin/ipsecctl/ike.c rev 1.85: ike_gen_config() prints,
# per ike rule, ike_section_general() (dynamic only), ike_section_peer() (the
# `[Phase 1]:Default` or `[Phase 1]:PEER` line, then `Authentication=` with
# the PSK for psk rules), ike_section_p1() (one phase-1 transform: method,
# hash, `%s_CBC` cipher, KEY_LENGTH for AES/Blowfish, group, default
# MODP_3072), the phase-2 sections, and last ike_connect(): `C add [Phase
# 2]:Passive-Connections=NAME` (passive) or `Connections=NAME`, without
# `force`.  ipsecctl.c rev 1.88 ipsecctl_print_rule() puts `@N ` before a
# rule's first line with -vv; flow and SA rules of the same file print as in
# `-s` output.  ipsecctl exits 1 on a syntax error after printing the rules it
# had read: the caller must not parse the stdout of a failed run.

# The one tag whose value is the PSK (ike_section_peer()).  A line carrying it
# is dropped before anything else looks at the line.
_PSK_TAG = "]:Authentication="
_NVF_COMMAND = re.compile(r"C (set|add) \[([^\]\n]+)\]:([^=\s]+)=(\S+)( force)?")
_P1_ATTRIBUTES = {"AUTHENTICATION_METHOD": "auth_method", "HASH_ALGORITHM": "hash",
                  "ENCRYPTION_ALGORITHM": "enc", "KEY_LENGTH": "key_length",
                  "GROUP_DESCRIPTION": "group"}


@dataclass(frozen=True)
class IkePhase1:
    """The phase-1 (main/aggressive mode) proposal one ike rule gives isakmpd.

    Names are isakmpd's, as ipsecctl sends them: hash `SHA` (hmac-sha1) or
    `SHA2_256`, enc `AES` / `3DES` / `BLOWFISH` / `CAST`, group `MODP_1024`.
    """

    peer: str | None          # None: `[Phase 1]:Default`, any peer (road warriors)
    section: str              # `peer-default`, `peer-198.51.100.7`
    exchange: str             # ID_PROT (main) or AGGRESSIVE
    auth_method: str          # PRE_SHARED or RSA_SIG
    hash: str
    enc: str
    key_length: str | None    # `128,128:256` (default,min:max bits); None for 3DES, CAST
    group: str
    connection: str           # the phase-2 name: `from-192.0.2.1=17-to-0.0.0.0/0=17:1701`
    passive: bool             # Passive-Connections (waits for clients) or Connections

    def key_bits(self) -> tuple[int, int] | None:
        """(min, max) key bits isakmpd accepts, from KEY_LENGTH `default,min:max`."""
        if self.key_length is None:
            return None
        match = re.fullmatch(r"[0-9]{1,4},([0-9]{1,4}):([0-9]{1,4})", self.key_length)
        if match is None:
            return None
        return int(match.group(1)), int(match.group(2))


def drop_psk_lines(text: str) -> str:
    """TEXT without the lines that carry a PSK (`C set [X]:Authentication=PSK force`).

    For anything that must keep `ipsecctl -nvf` output (a snapshot): what is
    left parses to the same records.
    """
    return "".join(line for line in text.splitlines(keepends=True) if _PSK_TAG not in line)


def parse_ike_nvf(text: str, command: str = "ipsecctl -nvf /etc/ipsec.conf"
                  ) -> tuple[IkePhase1, ...]:
    """The phase-1 proposal of each ike rule in `ipsecctl -nvf` output, in file order.

    The PSK line is dropped as it is met, and no error names or quotes a
    line's text (a PSK broken over lines must not reach a message either):
    errors give the line number only.
    """
    rules: list[IkePhase1] = []
    current: dict[str, str | None] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        if _PSK_TAG in raw:
            continue
        line = _RULE_NUMBER.sub("", raw, count=1) if raw.startswith("@") else raw
        if not line.strip():
            continue

        def fail(reason: str, at: int = lineno) -> ParseError:
            return ParseError(command, reason, at, None)

        if not line.startswith("C "):
            first = line.split()[0]
            if first == "flow" or first in SATYPES or line.startswith(("[bundle ", "\t")):
                continue                      # a manual-keying rule of the same file
            raise fail("neither an isakmpd FIFO command nor a flow or SA line")
        match = _NVF_COMMAND.fullmatch(line)
        if match is None:
            raise fail("not a `C set|add [SECTION]:TAG=VALUE [force]` line")
        verb, section, tag, value, _ = match.groups()
        if section == "Phase 1" and verb == "set":
            if current is not None:
                raise fail("a new ike rule starts before the last one named its connection")
            current = {"peer": None if tag == "Default" else tag, "section": value}
        elif current is None:
            if section != "General":
                raise fail("an isakmpd setting outside an ike rule (no `[Phase 1]` line "
                           "before it)")
        elif section == current["section"] and tag == "Configuration":
            current["config"] = value
        elif section == current.get("config") and tag == "EXCHANGE_TYPE":
            current["exchange"] = value
        elif section == current.get("config") and tag == "Transforms" and verb == "add":
            current["transform"] = value
        elif section == current.get("transform") and tag in _P1_ATTRIBUTES:
            if tag == "ENCRYPTION_ALGORITHM" and value.endswith("_CBC"):
                value = value[:-len("_CBC")]
            current[_P1_ATTRIBUTES[tag]] = value
        elif section == "Phase 2" and verb == "add" and tag in ("Passive-Connections",
                                                                  "Connections"):
            rules.append(_phase1(current, value, tag == "Passive-Connections", fail))
            current = None
    if current is not None:
        raise ParseError(command, "output ends inside an ike rule (no `[Phase 2]` "
                                  "connection line): truncated?", None, None)
    return tuple(rules)


def _phase1(rule: dict[str, str | None], connection: str, passive: bool,
            fail: Callable[[str], ParseError]) -> IkePhase1:
    missing = [name for name in ("exchange", "transform", "auth_method", "hash", "enc",
                                 "group") if rule.get(name) is None]
    if missing:
        raise fail(f"the ike rule ending here lacks its phase-1 {', '.join(missing)}")

    def have(name: str) -> str:
        value = rule[name]
        assert value is not None
        return value

    return IkePhase1(rule["peer"], have("section"), have("exchange"), have("auth_method"),
                     have("hash"), have("enc"), rule.get("key_length"), have("group"),
                     connection, passive)
