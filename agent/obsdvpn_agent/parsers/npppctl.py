"""Parsers of npppctl(8) output: the PPP sessions npppd(8) holds.

    $ npppctl -n session all
    Ppp Id = 0
              Ppp Id                  : 0
              Username                : alice
              ...
              Tunnel From             : 203.0.113.10:1701
              Elapsed Time            : 3725 sec (1 hour and 2 minutes)
              Input Bytes             : 123456 (120.6 KB)

Formats, as read in openbsd/src usr.sbin/npppd/npppctl/npppctl.c rev 1.15
(2024/11/21; FORMATS.md §6 cites rev 1.10 with the same printf formats):

- fprint_who_all(): before every entry but the first an empty line, then
  `Ppp Id = %u` and sixteen `          LABEL : value` lines (labels padded
  to 24 columns).  `MRU` is missing in old npppctl (rev 1.5, 2015).  The
  entry index counts every session, filtered out or not, so `session all
  FILTER` can start with the empty line.  Elapsed Time is `%lu sec %s`:
  below a minute humanize_duration() is "" and the line ends in a blank.
  Bytes are `%llu` plus humanize_bytes() ` (%.1f KB|MB|GB)` from 1000,
  1000*1024 and 1000*1024*1024 on; errors are `%lu (%.1f%%)`.
- peerstr(): AF_INET/AF_INET6 peers are `host:port` (NI_NUMERICSERV, and
  NI_NUMERICHOST only with -n, so without -n a reverse-DNS name may show),
  with no brackets around IPv6 (`2001:db8::1:1701`: the port follows the
  last colon); a PPPoE peer (AF_LINK) is a MAC address with no port.
- tunnel_proto is npppd_tunnel_protocol_name() (usr.sbin/npppd/npppd/npppd.c):
  None, L2TP, PPTP, PPPoE, SSTP or Error.  The realm is empty when the
  session has none (npppd_ctl.c npppd_who_init()).
- fprint_who_brief() / fprint_who_packets(): a header (the packets one says
  `Ppd Id`) and dash line with the first entry only, so no session prints
  nothing; rows `%10u %-15s %-20s %-5s %s` / `%10u %-20s %9.1f %7u %5u %9.1f %7u %5u`.
  A username longer than 20 pushes the later columns right, so rows are
  split on blanks, never cut at fixed columns.
- clear_session(): `Successfully disconnected %d session%s.`, `Failed to
  disconnect %d session%s.`, or `No session to disconnect.`
- main(): `err(EXIT_FAILURE, "connect")` when the control socket
  /var/run/npppd_ctl cannot be reached: `npppctl: connect: No such file or
  directory` (npppd not running), `... Connection refused` (a stale socket)
  or `... Permission denied` (control.c makes it mode 0660: not root).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import NamedTuple

from . import ParseError, unsigned

TUNNEL_PROTOCOLS = frozenset({"None", "L2TP", "PPTP", "PPPoE", "SSTP", "Error"})
# Protocols whose peer is an AF_INET/AF_INET6 address printed `host:port`.
_PORTED = frozenset({"L2TP", "PPTP", "SSTP"})

# Numbers are [0-9], never \d (which takes '١٢٣'), and are read by unsigned().
_HEADER = re.compile(r"Ppp Id = ([0-9]+)")
_LABEL_LINE = re.compile(r" +([A-Za-z][A-Za-z0-9 ]*?) *: ?(.*)")
_LABELS = ("Ppp Id", "Username", "Realm Name", "Concentrated Interface",
           "Assigned IPv4 Address", "MRU", "Tunnel Protocol", "Tunnel From", "Start Time",
           "Elapsed Time", "Input Bytes", "Input Packets", "Input Errors", "Output Bytes",
           "Output Packets", "Output Errors")
_OPTIONAL = frozenset({"MRU"})
_EMPTY_OK = frozenset({"Username", "Realm Name"})
_START = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_ELAPSED = re.compile(r"([0-9]+) sec ?(.*)")
_BYTES = re.compile(r"([0-9]+)(?: \(([0-9]+\.[0-9]) (KB|MB|GB)\))?")
_ERRORS = re.compile(r"([0-9]+) \([0-9]+\.[0-9]%\)")
# NI_NUMERICSERV prints the u_int16 port in at most 5 digits.
_PEER = re.compile(r"(.+):([0-9]{1,5})")
_CLEAR = re.compile(r"(Successfully disconnected|Failed to disconnect) ([0-9]+) sessions?\.")
# fprint_who_brief() prints "%10u %-15s %-20s %-5s %s" (npppctl.c rev 1.10): the username
# is the only free text and may hold blanks ("Jean Dupont"), so the id and address are
# taken from the left, the protocol and peer from the right, and the username is what
# lies between them less the %-20s padding (so its own leading or trailing blanks, which
# the padding hides, are not kept).
_BRIEF_ROW = re.compile(r" *(\S+) +(\S+) (.*) (\S+) +(\S+) *")
# `%9.1f` of a byte count / 1024 fits in 20 digits before the point like any
# u_int64; float() alone would take '١٢.٣', or make 'inf' of 400 digits.
_KBYTES = re.compile(r"[0-9]{1,20}\.[0-9]")
_NOT_RUNNING = re.compile(r"npppctl: connect: (?:No such file or directory|Connection refused)")


class PppSession(NamedTuple):
    """One entry of `npppctl session all`.

    A NamedTuple, not a frozen dataclass like the other records: one per
    session, so 10,000 of them on a busy host, built in a seventh of the time
    and held in a third of the memory (bench/collection.py).
    """

    ppp_id: int
    username: str
    realm: str
    interface: str                # Concentrated Interface: pppx3, pppac0
    assigned_ipv4: str
    mru: int | None               # None: npppctl older than the MRU line
    tunnel_protocol: str          # L2TP, PPTP, PPPoE (npppd also knows SSTP, None, Error)
    tunnel_from: str              # as printed: 203.0.113.10:1701, a host name, a MAC
    peer_host: str
    peer_port: int | None         # None for PPPoE (a MAC has no port)
    start_time: str               # as printed, the host's local time: 2024/05/01 12:00:00
    elapsed_s: int
    bytes_in: int
    packets_in: int
    errors_in: int
    bytes_out: int
    packets_out: int
    errors_out: int


@dataclass(frozen=True)
class PppSessionReport:
    sessions: tuple[PppSession, ...]
    unknown_lines: int            # label lines of a label this parser does not know


@dataclass(frozen=True)
class PppSessionBrief:
    """One row of `npppctl session brief`."""

    ppp_id: int
    assigned_ipv4: str
    username: str
    tunnel_protocol: str
    tunnel_from: str
    peer_host: str
    peer_port: int | None


@dataclass(frozen=True)
class PppSessionPackets:
    """One row of `npppctl session packets` (kbytes = bytes/1024, one decimal)."""

    ppp_id: int
    username: str
    kbytes_in: float
    packets_in: int
    errors_in: int
    kbytes_out: float
    packets_out: int
    errors_out: int


@dataclass(frozen=True)
class NpppClear:
    """`npppctl clear ...`: sessions disconnected and sessions that failed to."""

    disconnected: int
    failed: int


def is_not_running_error(stderr: str) -> bool:
    """Whether npppctl could not reach npppd's control socket because npppd is down."""
    return bool(_NOT_RUNNING.search(stderr))


def is_permission_error(stderr: str) -> bool:
    """Whether npppctl was refused the control socket (mode 0660): not root."""
    return "npppctl: connect: Permission denied" in stderr


def humanize_duration(sec: int) -> str:
    """npppctl.c humanize_duration(): `(1 hour and 2 minutes)`, '' below a minute."""
    hour, minute = sec // 3600, sec // 60 % 60
    parts = []
    if hour:
        parts.append(f"{hour} hour{'s' if hour > 1 else ''}")
    if minute:
        parts.append(f"{minute} minute{'s' if minute > 1 else ''}")
    return f"({' and '.join(parts)})" if parts else ""


def humanize_bytes(n: int) -> tuple[float, str] | None:
    """npppctl.c humanize_bytes() thresholds: (value, unit), None below 1000."""
    for unit, threshold, divisor in (("GB", 1000 * 1024 * 1024, 1024 ** 3),
                                     ("MB", 1000 * 1024, 1024 ** 2), ("KB", 1000, 1024)):
        if n >= threshold:
            return n / divisor, unit
    return None


def split_peer(tunnel_from: str, protocol: str) -> tuple[str, int | None] | None:
    """(host, port) of a peerstr() text, None when a ported peer lacks its port.

    A port above 65535 is no port: NI_NUMERICSERV prints the u_int16 sin_port.
    """
    if protocol not in _PORTED:
        return tunnel_from, None
    m = _PEER.fullmatch(tunnel_from)
    if not m or int(m.group(2)) > 65535:
        return None
    return m.group(1), int(m.group(2))


def _humanized_matches(n: int, shown: str | None, unit: str | None) -> bool:
    """Whether `N (x.y UNIT)` (shown, unit) or a bare `N` (None) is what npppctl prints for N."""
    human = humanize_bytes(n)
    if human is None or shown is None:
        return human is None and shown is None
    return human[1] == unit and abs(human[0] - float(shown)) <= 0.051


def _session(fields: dict[str, tuple[str, int, str]], command: str) -> PppSession:
    """One PppSession from its label -> (value, lineno, line) map."""

    def text(label: str) -> str:
        value, lineno, line = fields[label]
        if not value and label not in _EMPTY_OK:
            raise ParseError(command, f"empty {label}", lineno, line)
        return value

    def number(label: str) -> int:
        value, lineno, line = fields[label]
        return unsigned(value, command, lineno, line)

    def bytes_(label: str) -> int:
        value, lineno, line = fields[label]
        m = _BYTES.fullmatch(value)
        if not m:
            raise ParseError(command, f"expected `N` or `N (x.y KB|MB|GB)` for {label}",
                             lineno, line)
        n = unsigned(m.group(1), command, lineno, line)
        if not _humanized_matches(n, m.group(2), m.group(3)):
            raise ParseError(command, f"{label}: the humanized size does not match the count",
                             lineno, line)
        return n

    def errors(label: str) -> int:
        value, lineno, line = fields[label]
        m = _ERRORS.fullmatch(value)
        if not m:
            raise ParseError(command, f"expected `N (x.y%)` for {label}", lineno, line)
        return unsigned(m.group(1), command, lineno, line)

    protocol = text("Tunnel Protocol")
    if protocol not in TUNNEL_PROTOCOLS:
        raise ParseError(command, "unknown tunnel protocol", *fields["Tunnel Protocol"][1:])
    tunnel_from = text("Tunnel From")
    peer = split_peer(tunnel_from, protocol)
    if peer is None:
        raise ParseError(command, f"an {protocol} peer is printed `host:port`",
                         *fields["Tunnel From"][1:])
    address = text("Assigned IPv4 Address")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise ParseError(command, "not an IPv4 address",
                         *fields["Assigned IPv4 Address"][1:]) from None
    start = text("Start Time")
    if not _START.fullmatch(start):
        raise ParseError(command, "expected `YYYY/MM/DD HH:MM:SS`", *fields["Start Time"][1:])
    value, lineno, line = fields["Elapsed Time"]
    m = _ELAPSED.fullmatch(value)
    if not m:
        raise ParseError(command, "expected `N sec (H hours and M minutes)`", lineno, line)
    elapsed = unsigned(m.group(1), command, lineno, line)
    if m.group(2).rstrip() != humanize_duration(elapsed):
        raise ParseError(command, "expected `N sec (H hours and M minutes)`", lineno, line)
    return PppSession(
        ppp_id=number("Ppp Id"), username=text("Username"), realm=text("Realm Name"),
        interface=text("Concentrated Interface"), assigned_ipv4=address,
        mru=number("MRU") if "MRU" in fields else None, tunnel_protocol=protocol,
        tunnel_from=tunnel_from, peer_host=peer[0], peer_port=peer[1], start_time=start,
        elapsed_s=elapsed, bytes_in=bytes_("Input Bytes"),
        packets_in=number("Input Packets"), errors_in=errors("Input Errors"),
        bytes_out=bytes_("Output Bytes"), packets_out=number("Output Packets"),
        errors_out=errors("Output Errors"))


# An entry exactly as fprint_who_all() prints it: `Ppp Id = %u`, then each
# label line as `          %-24s: ` and its value, in the order of _LABELS (MRU
# only in newer npppctl), then the empty line before the next entry.  A value
# holds no line break of str.splitlines(), so the lines are the ones the
# line-by-line reading below sees, and each value pattern is the one that
# reading applies to the whole value (numbers of 1 to 20 digits, as unsigned()).
_NOT_A_BREAK = r"[^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"
_COUNT = r"([0-9]{1,20})"
# IPv4Address() takes four decimal octets 0-255 without a leading zero
# (ipaddress._parse_octet): the same set as this.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_BYTES_SHOWN = r"(?: \(([0-9]+\.[0-9]) (KB|MB|GB)\))?"     # _BYTES after the count
_PERCENT = r" \([0-9]+\.[0-9]%\)"                           # _ERRORS after the count


def _usual_line(label: str, value: str) -> str:
    return f"          {label:<24}: {value}" + r"\n"


_USUAL_ENTRY = re.compile(
    rf"Ppp Id = {_COUNT}\n"
    + _usual_line("Ppp Id", _COUNT)
    + _usual_line("Username", f"({_NOT_A_BREAK}*)")
    + _usual_line("Realm Name", f"({_NOT_A_BREAK}*)")
    + _usual_line("Concentrated Interface", f"({_NOT_A_BREAK}+)")
    + _usual_line("Assigned IPv4 Address", rf"((?:{_OCTET}\.){{3}}{_OCTET})")
    + f"(?:{_usual_line('MRU', _COUNT)})?"
    + _usual_line("Tunnel Protocol", "(" + "|".join(sorted(TUNNEL_PROTOCOLS)) + ")")
    + _usual_line("Tunnel From", f"({_NOT_A_BREAK}+)")
    + _usual_line("Start Time", f"({_START.pattern})")
    + _usual_line("Elapsed Time", f"{_COUNT} sec ?({_NOT_A_BREAK}*)")
    + _usual_line("Input Bytes", _COUNT + _BYTES_SHOWN)
    + _usual_line("Input Packets", _COUNT)
    + _usual_line("Input Errors", _COUNT + _PERCENT)
    + _usual_line("Output Bytes", _COUNT + _BYTES_SHOWN)
    + _usual_line("Output Packets", _COUNT)
    + _usual_line("Output Errors", _COUNT + _PERCENT)
    + r"\n*")


def _usual_report(text: str) -> PppSessionReport | None:
    """The report of output made only of entries as npppctl prints them, else None.

    One match per entry instead of a regular expression per line and a
    dictionary per entry (0.4 s for 10,000 sessions).  Anything unusual (an
    unknown or missing label, a blank-only line, CR-LF, a bad value) gives
    None, and parse_session_all_report() then reads the output line by line,
    accepting or rejecting it as before.
    """
    if text and not text.endswith("\n"):
        text += "\n"
    pos, end = len(text) - len(text.lstrip("\n")), len(text)
    sessions: list[PppSession] = []
    while pos < end:
        m = _USUAL_ENTRY.match(text, pos)
        if m is None:
            return None
        (header_id, ppp_id, username, realm, interface, address, mru, protocol, tunnel_from,
         start, elapsed, elapsed_text, bytes_in, shown_in, unit_in, packets_in, errors_in,
         bytes_out, shown_out, unit_out, packets_out, errors_out) = m.groups()
        peer = split_peer(tunnel_from, protocol)
        elapsed_s, n_in, n_out = int(elapsed), int(bytes_in), int(bytes_out)
        if (peer is None or int(header_id) != int(ppp_id)
                or elapsed_text.rstrip() != humanize_duration(elapsed_s)
                or not _humanized_matches(n_in, shown_in, unit_in)
                or not _humanized_matches(n_out, shown_out, unit_out)):
            return None
        sessions.append(PppSession(
            int(ppp_id), username, realm, interface, address,
            None if mru is None else int(mru), protocol, tunnel_from, peer[0], peer[1],
            start, elapsed_s, n_in, int(packets_in), int(errors_in), n_out,
            int(packets_out), int(errors_out)))
        pos = m.end()
    return PppSessionReport(tuple(sessions), 0)


def parse_session_all_report(text: str, command: str = "npppctl session all") -> PppSessionReport:
    """Parse `npppctl [-n] session all [FILTER]` and count label lines it does not know."""
    usual = _usual_report(text)
    if usual is not None:
        return usual
    sessions: list[PppSession] = []
    unknown = 0
    fields: dict[str, tuple[str, int, str]] | None = None
    header: tuple[int, int, str] = (0, 0, "")

    def finish() -> None:
        if fields is None:
            return
        missing = [label for label in _LABELS if label not in fields and label not in _OPTIONAL]
        if missing:
            raise ParseError(command, f"entry lacks {', '.join(missing)}", header[1], header[2])
        session = _session(fields, command)
        if session.ppp_id != header[0]:
            raise ParseError(command, f"`Ppp Id = {header[0]}` but Ppp Id {session.ppp_id}",
                             header[1], header[2])
        sessions.append(session)

    for lineno, line in enumerate(text.splitlines(), 1):
        m = _HEADER.fullmatch(line)
        if m:
            finish()
            fields, header = {}, (unsigned(m.group(1), command, lineno, line), lineno, line)
            continue
        if not line.strip():
            continue
        m = _LABEL_LINE.fullmatch(line)
        if fields is None or not m:
            raise ParseError(command, "expected `Ppp Id = N` or a `LABEL : value` line",
                             lineno, line)
        label, value = m.groups()
        if label not in _LABELS:
            unknown += 1
            continue
        if label in fields:
            raise ParseError(command, f"{label} twice in one entry", lineno, line)
        fields[label] = (value, lineno, line)
    finish()
    return PppSessionReport(tuple(sessions), unknown)


def parse_session_all(text: str, command: str = "npppctl session all") -> tuple[PppSession, ...]:
    """Parse `npppctl [-n] session all`: one PppSession per entry, () when empty."""
    return parse_session_all_report(text, command).sessions


def _table(text: str, command: str, headers: tuple[tuple[str, ...], ...]) -> list[tuple[int, str]]:
    """The numbered rows of a brief/packets table, after its header and dash line."""
    lines = text.splitlines()
    if not lines:
        return []
    if tuple(lines[0].split()) not in headers:
        raise ParseError(command, "unknown table header", 1, lines[0])
    if len(lines) < 2 or not re.fullmatch(r"-[- ]*", lines[1].rstrip()):
        raise ParseError(command, "expected the dash line under the header", 2,
                         lines[1] if len(lines) > 1 else None)
    return list(enumerate(lines[2:], 3))


def parse_session_brief(text: str, command: str = "npppctl session brief"
                        ) -> tuple[PppSessionBrief, ...]:
    """Parse `npppctl [-n] session brief`: one row per session, () when empty."""
    header = ("Ppp", "Id", "Assigned", "IPv4", "Username", "Proto", "Tunnel", "From")
    rows = []
    for lineno, line in _table(text, command, (header,)):
        row = _BRIEF_ROW.fullmatch(line)
        if row is None:
            raise ParseError(command, "expected id, IPv4, username, protocol, peer",
                             lineno, line)
        ppp_id, address, padded_username, protocol, tunnel_from = row.groups()
        username = padded_username.strip(" ")   # an empty username prints as 20 blanks
        if protocol not in TUNNEL_PROTOCOLS:
            raise ParseError(command, "unknown tunnel protocol", lineno, line)
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ParseError(command, "not an IPv4 address", lineno, line) from None
        peer = split_peer(tunnel_from, protocol)
        if peer is None:
            raise ParseError(command, f"an {protocol} peer is printed `host:port`", lineno, line)
        rows.append(PppSessionBrief(unsigned(ppp_id, command, lineno, line), address, username,
                                    protocol, tunnel_from, *peer))
    return tuple(rows)


def parse_session_packets(text: str, command: str = "npppctl session packets"
                          ) -> tuple[PppSessionPackets, ...]:
    """Parse `npppctl session packets`: one row per session, () when empty."""
    header = ("Id", "Username", "In(Kbytes/pkts/errs)", "Out(Kbytes/pkts/errs)")
    rows = []
    for lineno, line in _table(text, command, (("Ppd", *header), ("Ppp", *header))):
        cols = line.split()
        if len(cols) < 7:
            raise ParseError(command, "expected id, username and six counters", lineno, line)
        # Only the username is free text: the six counters are the last columns.
        ppp_id, username, numbers = cols[0], " ".join(cols[1:-6]), cols[-6:]
        if not all(_KBYTES.fullmatch(numbers[i]) for i in (0, 3)):
            raise ParseError(command, "expected Kbytes as `N.N`", lineno, line)
        counts = [unsigned(numbers[i], command, lineno, line) for i in (1, 2, 4, 5)]
        rows.append(PppSessionPackets(unsigned(ppp_id, command, lineno, line), username,
                                      float(numbers[0]), counts[0], counts[1],
                                      float(numbers[3]), counts[2], counts[3]))
    return tuple(rows)


def parse_clear_result(text: str, command: str = "npppctl clear") -> NpppClear:
    """Parse `npppctl clear all|FILTER`: counts of disconnected and failed sessions."""
    done = failed = 0
    seen = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line == "No session to disconnect.":
            seen = True
            continue
        m = _CLEAR.fullmatch(line)
        if not m:
            raise ParseError(command, "expected `Successfully disconnected N sessions.`, "
                                      "`Failed to disconnect N sessions.` or "
                                      "`No session to disconnect.`", lineno, line)
        seen = True
        if m.group(1).startswith("Successfully"):
            done = unsigned(m.group(2), command, lineno, line)
        else:
            failed = unsigned(m.group(2), command, lineno, line)
    if not seen:
        raise ParseError(command, "no output: clear always prints a result line")
    return NpppClear(done, failed)


def parse_clear(text: str, command: str = "npppctl clear") -> int:
    """Parse `npppctl clear ...`: the number of sessions disconnected (0 for none)."""
    return parse_clear_result(text, command).disconnected
