"""Parser of `ifconfig` output: pppx(4) session interfaces, pppac(4) and the rest.

    $ ifconfig pppx
    pppx0: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1400
    	description: alice
    	index 7 priority 0 llprio 3
    	groups: pppx
    	inet 10.0.0.1 --> 10.0.0.2 netmask 0xffffffff

`ifconfig pppx` names the interface group, so it prints every member (one
per npppd session), each as a `NAME: flags=` line at column 0 followed by
TAB-indented detail lines.  npppd sets the description to the username.

Formats, as read in openbsd/src sbin/ifconfig/ifconfig.c rev 1.472
(2024/05/18; FORMATS.md cites rev 1.476 with the same status() layout):
status() prints `%s: ` + printb("flags", ...) (`flags=%x<NAME,...>`), then
` rdomain %d`, ` metric %lu`, ` mtu %lu` (each only when non-zero), then
`\\tdescription: %s` (only when set), `\\tindex %u priority %d llprio %d`
(`llprio` always), `\\tgroups: g1 g2` (getifgroups(), group "all" left out),
media/status and other detail lines.  in_status(): `\\tinet A[ --> B] netmask
0x%x[ broadcast C]`; in6_alias(): `\\tinet6 A[ --> B] prefixlen N [flags]
[scopeid 0x%x] [pltime X vltime Y]`, where B is empty when the peer is unset.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from . import UNSIGNED, ParseError

Fail = Callable[[str], ParseError]

# printb() prints the u_int flags as `%x`: at most 8 hex digits.
_HEADER = re.compile(r"([^\s:]+): flags=([0-9a-f]{1,8})<([^>]*)>(.*)")
_FLAG_NAME = re.compile(r"[A-Z0-9_]+")
_NETMASK = re.compile(r"0x[0-9a-f]+")
# in6_alias() address flags; `autoconfprivacy` is the pre-`temporary` name.
INET6_FLAGS = frozenset({"anycast", "tentative", "duplicated", "detached",
                         "deprecated", "autoconf", "temporary", "autoconfprivacy"})
# Detail lines status() prints that the agent does not need.
IGNORED_DETAILS = frozenset({"lladdr", "keepalive:", "patch:", "media:", "status:",
                             "supported", "ieee80211:", "tunnel:"})
# The sole message of printif() when nothing matched the name (see below).
_NO_SUCH_INTERFACE = re.compile(r"(?:ifconfig: )?(\S+): no such interface")


@dataclass(frozen=True, slots=True)
class InetAddress:
    """`inet 10.0.0.1 --> 10.0.0.2 netmask 0xffffffff` or `... netmask 0xffffff00 broadcast C`."""

    address: str
    peer: str | None              # POINTOPOINT destination
    netmask: str                  # as printed, '0xffffffff'
    broadcast: str | None


@dataclass(frozen=True, slots=True)
class Inet6Address:
    """`inet6 2001:db8:45::45 --> 2001:db8:23::23 prefixlen 128 tentative`."""

    address: str                  # as printed, link-local with '%ifname'
    peer: str | None              # None when not POINTOPOINT or printed empty
    prefixlen: int


@dataclass(frozen=True, slots=True)
class Interface:
    """One interface block of `ifconfig` output."""

    name: str
    flags: int
    flag_names: tuple[str, ...]
    mtu: int                      # 0 when ifconfig printed no `mtu` (it does so for 0)
    description: str | None
    index: int | None             # None on SMALL (install media) ifconfig
    groups: tuple[str, ...]
    inet: tuple[InetAddress, ...]
    inet6: tuple[Inet6Address, ...]
    unknown_lines: int


# An interface as status() prints a pppx(4) session: the flags line with at
# most an mtu, an optional description, the index line, the groups, at most
# one `inet` line.  Each pattern is the one the line-by-line reading below
# applies to that line (words \S+ between single blanks, numbers of 1 to 20
# digits as _number() reads them, `(?:...)?+` taking a keyword's value as
# _inet() does), and no value holds a line break of str.splitlines().
_USUAL_INTERFACE = re.compile(
    r"([^\s:]+): flags=([0-9a-f]{1,8})<((?:[A-Z0-9_]+(?:,[A-Z0-9_]+)*)?)>(?: mtu ([0-9]{1,20}))?\n"
    r"(?:\tdescription: ([^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*)\n)?"
    r"\tindex (-?[0-9]{1,20}) priority -?[0-9]{1,20} llprio -?[0-9]{1,20}\n"
    r"\tgroups:((?: \S+)*)\n"
    r"(?:\tinet (\S+)(?: --> (\S+))?+ netmask (0x[0-9a-f]+)(?: broadcast (\S+))?+\n)?")


def _usual_interfaces(text: str) -> tuple[Interface, ...] | None:
    """The interfaces of output made only of usual pppx blocks, else None.

    One match per interface instead of a split and a dispatch per line (0.15 s
    for 10,000 sessions).  Any other line, a blank line or CR-LF gives None,
    and parse_ifconfig() reads the output line by line, as before.
    """
    if not text.endswith("\n"):
        text += "\n"
    pos, end = 0, len(text)
    found: list[Interface] = []
    # Every session interface has the same flags and groups: one tuple each.
    split: dict[tuple[str, str], tuple[str, ...]] = {}
    while pos < end:
        m = _USUAL_INTERFACE.match(text, pos)
        if m is None:
            return None
        name, flags, names, mtu, description, index, groups, address, peer, netmask, \
            broadcast = m.groups()
        # _Block.detail(): a description of blanks only is no words after the key.
        if description is not None and not description.strip():
            description = ""
        flag_names = split.get((",", names))
        if flag_names is None:
            flag_names = split[",", names] = tuple(names.split(",")) if names else ()
        group_names = split.get((" ", groups))
        if group_names is None:
            group_names = split[" ", groups] = tuple(groups.split())
        found.append(Interface(
            name, int(flags, 16), flag_names, int(mtu) if mtu else 0, description, int(index),
            group_names, (InetAddress(address, peer, netmask, broadcast),) if address else (),
            (), 0))
        pos = m.end()
    return tuple(found) or None


def parse_ifconfig(text: str, command: str = "ifconfig") -> tuple[Interface, ...]:
    """Parse `ifconfig`, `ifconfig pppx`, `ifconfig pppx0`, `ifconfig pppac0` output.

    Empty output is an error: ifconfig then printed `NAME: no such interface`
    on stderr and exited 1; see parse_ifconfig_error().
    """
    usual = _usual_interfaces(text)
    if usual is not None:
        return usual
    lines = text.splitlines()
    blocks: list[_Block] = []
    for lineno, line in enumerate(lines, 1):
        def fail(reason: str, lineno: int = lineno, line: str = line) -> ParseError:
            return ParseError(command, reason, lineno, line)

        if not line.strip():
            continue
        if not line.startswith("\t"):
            blocks.append(_Block(line, lineno, fail))
        elif not blocks:
            raise fail("detail line before any `NAME: flags=` line")
        else:
            blocks[-1].detail(line, fail)
    if not blocks:
        raise ParseError(command, "no interface in the output (ifconfig reports a missing "
                         "interface or group on stderr)", None, None)
    return tuple(block.finish(command) for block in blocks)


def parse_ifconfig_error(stderr: str) -> str | None:
    """Return the interface or group name ifconfig reported missing, else None.

    Source: openbsd/src sbin/ifconfig/ifconfig.c rev 1.472 (2024/05/18),
    printif(): a name not ending in a digit is tried as a group first
    (printgroup() returns -1 on ENOENT, i.e. the group vanished with its last
    member), then as a prefix of the interface names; when nothing matched,
    `fprintf(stderr, "%s: no such interface\\n", ifname); exit(1);`.  So
    `ifconfig pppx` with no npppd session prints `pppx: no such interface` and
    exits 1, and `ifconfig pppx0` without that unit prints
    `pppx0: no such interface`.  No `ifconfig:` prefix (fprintf, not warnx); the
    optional prefix is accepted only for older err(3)-style wording.
    """
    for line in stderr.splitlines():
        match = _NO_SUCH_INTERFACE.fullmatch(line.strip())
        if match:
            return match.group(1)
    return None


class _Block:
    """The lines of one interface while they are read."""

    def __init__(self, line: str, lineno: int, fail: Fail) -> None:
        match = _HEADER.fullmatch(line)
        if not match:
            raise fail("expected `NAME: flags=HEX<...>` at column 0")
        self.name, self.lineno = match.group(1), lineno
        self.flags = int(match.group(2), 16)
        names = match.group(3)
        self.flag_names = tuple(names.split(",")) if names else ()
        if not all(_FLAG_NAME.fullmatch(n) for n in self.flag_names):
            raise fail("malformed flag names")
        values = _pairs(match.group(4).split(), {"rdomain", "metric", "mtu"}, fail)
        self.mtu = values.get("mtu", 0)
        self.description: str | None = None
        self.index: int | None = None
        self.llprio_seen = False
        self.groups: tuple[str, ...] = ()
        self.inet: list[InetAddress] = []
        self.inet6: list[Inet6Address] = []
        self.unknown = 0

    def detail(self, line: str, fail: Fail) -> None:
        words = line.split()
        key = words[0]
        if key == "description:":
            # Free text (npppd puts the username): keep it whole, blanks included.
            # status() prints `\tdescription: %s`: a TAB after the colon is not its output.
            _, blank, description = line.partition("description: ")
            if len(words) > 1 and not blank:
                raise fail("expected `description: TEXT`")
            self.description = description if len(words) > 1 else ""
        elif key in ("index", "priority", "llprio"):
            values = _pairs(words, {"index", "priority", "llprio"}, fail, signed=True)
            if "llprio" not in values:
                raise fail("`llprio` missing")
            self.index, self.llprio_seen = values.get("index"), True
        elif key == "groups:":
            self.groups = tuple(words[1:])
        elif key == "inet":
            self.inet.append(_inet(words, fail))
        elif key == "inet6":
            self.inet6.append(_inet6(line.lstrip("\t").split(" "), fail))
        elif key not in IGNORED_DETAILS:
            self.unknown += 1

    def finish(self, command: str) -> Interface:
        # status() always prints the llprio line: without it the block was cut short.
        if not self.llprio_seen:
            raise ParseError(command, f"{self.name}: no `index/priority/llprio` line: "
                             "output truncated?", self.lineno, None)
        return Interface(self.name, self.flags, self.flag_names, self.mtu,
                         self.description, self.index, self.groups, tuple(self.inet),
                         tuple(self.inet6), self.unknown)


def _number(word: str, what: str, fail: Fail, signed: bool = False) -> int:
    # UNSIGNED, not str.isdigit(): isdigit() takes '²', which int() then refuses.
    digits = word[1:] if signed and word.startswith("-") else word
    if not UNSIGNED.fullmatch(digits):
        raise fail(f"bad number `{word}` for {what}")
    return int(word)


def _pairs(words: list[str], allowed: set[str], fail: Fail,
           signed: bool = False) -> dict[str, int]:
    """`key N key N ...` with keys from `allowed`."""
    if len(words) % 2:
        raise fail("a keyword without its value")
    values = {}
    for key, value in zip(words[::2], words[1::2]):
        if key not in allowed:
            raise fail(f"unknown keyword `{key}`")
        values[key] = _number(value, key, fail, signed)
    return values


def _inet(words: list[str], fail: Fail) -> InetAddress:
    if len(words) < 2:
        raise fail("inet line without an address")
    address, rest = words[1], words[2:]
    peer = broadcast = netmask = None
    if rest[:1] == ["-->"]:
        if len(rest) < 2:
            raise fail("no address after `-->`")
        peer, rest = rest[1], rest[2:]
    if rest[:1] != ["netmask"] or len(rest) < 2:
        raise fail("`netmask 0x...` missing")
    netmask, rest = rest[1], rest[2:]
    if not _NETMASK.fullmatch(netmask):
        raise fail(f"bad netmask `{netmask}`")
    if rest[:1] == ["broadcast"] and len(rest) == 2:
        broadcast, rest = rest[1], []
    if rest:
        raise fail(f"unknown keyword `{rest[0]}` in inet line")
    return InetAddress(address, peer, netmask, broadcast)


def _inet6(parts: list[str], fail: Fail) -> Inet6Address:
    # Split on single blanks: an unset peer is printed as an empty string (`-->  prefixlen`).
    if len(parts) < 2 or not parts[1]:
        raise fail("inet6 line without an address")
    address, rest = parts[1], parts[2:]
    peer = None
    if rest[:1] == ["-->"]:
        if len(rest) < 2:
            raise fail("no field after `-->`")
        peer, rest = rest[1] or None, rest[2:]
    prefixlen = None
    while rest:
        word, rest = rest[0], rest[1:]
        if word == "prefixlen" and rest:
            prefixlen, rest = _number(rest[0], "prefixlen", fail), rest[1:]
        elif ((word == "scopeid" and rest and _NETMASK.fullmatch(rest[0]))
              or (word in ("pltime", "vltime") and rest)):
            rest = rest[1:]                     # a value the agent does not keep
        elif word not in INET6_FLAGS:
            raise fail(f"unknown keyword `{word}` in inet6 line")
    if prefixlen is None:
        raise fail("`prefixlen N` missing")
    return Inet6Address(address, peer, prefixlen)
