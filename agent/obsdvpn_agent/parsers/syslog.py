"""isakmpd and npppd lines of /var/log/daemon, as OpenBSD's syslogd writes them.

    $ tail -3 /var/log/daemon
    Nov 29 13:02:11 vpn npppd[31337]: l2tpd ctrl=4 call=1 logtype=PPPBind ppp=7
    Nov 29 13:02:11 vpn npppd[31337]: ppp id=7 layer=base logtype=Started tunnel=L2TP(203.0.113.9:1701)
    Nov 29 13:02:12 vpn npppd[31337]: ppp id=7 layer=chap proto=mschap_v2 logtype=Failure username="bob" realm=LOCAL

Line layout (usr.sbin/syslogd/syslogd.c `fprintlog`): the 15-character timestamp
`Mmm dd hh:mm:ss` (ctime(3) + 4, or the one the client sent), a space, the host
name, a space, the message; `logmsg` takes the program name from the message
(`prog[pid]: ...`, what openlog(LOG_PID) gives).  syslogd vis(3)-encodes
control characters (`printline`), so one message is one line.  The year is not
written: parse_line() takes it from a reference time (see resolve_year()).

Message formats: OpenBSD 6.9 (github:arekinath/openbsd-6.9-a3 @ 744a280e5e7d), the
file:line of each logging call as tests/fixtures/logs/formats_catalog.tsv lists it;
the ones this module matches were checked against openbsd/src in the index:
ppp.c (ppp_log, ppp_start, ppp_stop0, ppp_ipcp_opened), chap.c (chap_log,
chap_response, mschapv2_authenticate), pap.c (pap_log, pap_response),
l2tp_ctrl.c (l2tp_ctrl_log, l2tp_ctrl_recv_SCCRQ), l2tp_call.c (l2tp_call_bind_ppp),
npppd common/debugutil.c (vlog_printf: plain vsyslog, no extra prefix),
isakmpd message.c (message_drop), ike_phase_1.c (attribute_unacceptable).
transport.c:325 `giving up on exchange ...` is from the 6.9 catalog only: the index
holds older transport.c revisions, which log `giving up on message %p` instead
(also matched, without a peer).

parse_line() never raises on a log line: a line of another daemon is `other`, a
line of isakmpd or npppd that matches no pattern is `unmatched`.  A line can be
written by anyone who can reach /dev/log, so nothing here trusts a field's
content beyond its shape (user names and vendors are shown, never used as labels).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAEMONS = ("isakmpd", "npppd")

# syslogd.c logmsg(): a message is "non-standard" unless msg[3] == ' ', msg[6] == ' ',
# msg[9] == ':', msg[12] == ':', msg[15] == ' ' -- the same 15 characters land in the file.
_HEADER = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) (?P<day>[ 0-9][0-9]) (?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2}) "
    r"(?P<host>\S+) (?P<rest>.*)")
# openlog(..., LOG_PID, ...): "prog[pid]: msg" (isakmpd log.c:143, npppd log.c log_init).
_TAG = re.compile(r"(?P<prog>[A-Za-z0-9_.-]+)\[(?P<pid>[0-9]{1,10})\]: (?P<msg>.*)")
# syslogd.c logmsg()/fprintlog(): duplicate lines are folded into this one.
_REPEATED = re.compile(r"last message repeated (?P<n>[0-9]{1,9}) times?")

IPV4 = r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
ADDR = rf"(?:{IPV4}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)"   # getnameinfo(NI_NUMERICHOST)
NUM = r"[0-9]{1,20}"


@dataclass(frozen=True)
class SyslogLine:
    """One line of a syslogd log file."""

    at: datetime          # host-local time, the year resolved by resolve_year()
    host: str
    prog: str             # "" for syslogd's own lines (last message repeated ...)
    pid: int | None
    message: str
    text: str             # the line as written, for evidence


@dataclass(frozen=True)
class Event:
    """One isakmpd or npppd line, read.  `kind` names what happened; the fields
    a kind does not carry are None.  `source` is the OpenBSD file:line of the
    logging call that writes it."""

    kind: str
    line: SyslogLine
    source: str
    ppp_id: int | None = None
    ctrl_id: int | None = None
    call_id: int | None = None
    user: str | None = None
    peer: str | None = None
    port: int | None = None
    notification: str | None = None
    auth: str | None = None        # PAP, MD5-CHAP, MS-CHAP-V2, ... or the chap/pap layer
    bytes_in: int | None = None    # TUNNELUSAGE data_in: received from the client
    bytes_out: int | None = None
    packets_in: int | None = None
    packets_out: int | None = None
    duration_s: int | None = None
    vendor: str | None = None
    hostname: str | None = None
    firmware: str | None = None
    assigned_ip: str | None = None
    iface: str | None = None
    attribute: str | None = None   # attribute_unacceptable: the IKE attribute
    got: str | None = None         # ... what the client offered
    expected: str | None = None    # ... what the policy wants
    detail: str | None = None      # free text of the message part that varies
    repeat: int = 1                # >1 when syslogd folded repeats into "last message repeated"


@dataclass(frozen=True)
class Unread:
    """A line that is not an isakmpd/npppd event: `other` (another program or a
    layout syslogd does not write) or `unmatched` (isakmpd/npppd, unknown message)."""

    result: str           # "other" | "unmatched"
    text: str
    line: SyslogLine | None = None


Record = Event | Unread


def resolve_year(month: int, day: int, hms: tuple[int, int, int],
                 reference: datetime) -> datetime:
    """The datetime of a year-less syslog timestamp seen at `reference`.

    A log only holds the past: a timestamp that would lie more than a day after
    the reference (clock skew between hosts allowed) belongs to the year before,
    so `Dec 31 23:59:59` read on Jan 1 is last year's.  Feb 29 in a year without
    it moves to the previous leap year's.
    """
    year = reference.year
    for _ in range(8):
        try:
            at = datetime(year, month, day, *hms)
        except ValueError:   # Feb 29 in a common year
            year -= 1
            continue
        if at <= reference + timedelta(days=1):
            return at
        year -= 1
    raise ValueError("no year fits")


def parse_syslog_line(text: str, reference: datetime) -> SyslogLine | None:
    """The syslogd header of one line, or None for a line of another layout."""
    m = _HEADER.fullmatch(text)
    if m is None or m["mon"] not in MONTHS:
        return None
    try:
        day = int(m["day"].strip())
        at = resolve_year(MONTHS.index(m["mon"]) + 1, day,
                          (int(m["h"]), int(m["m"]), int(m["s"])), reference)
    except ValueError:
        return None
    rest = m["rest"]
    tag = _TAG.fullmatch(rest)
    if tag is None:
        return SyslogLine(at, m["host"], "", None, rest, text)
    return SyslogLine(at, m["host"], tag["prog"], int(tag["pid"]), tag["msg"], text)


# --- message patterns -----------------------------------------------------------------
# (kind, source, regex).  First match wins; the order puts specific before general.

def _p(kind: str, source: str, pattern: str) -> tuple[str, str, re.Pattern[str]]:
    return kind, source, re.compile(pattern)


_PPP = rf"ppp id=(?P<ppp_id>{NUM}) "
_L2TP_CTRL = rf"l2tpd ctrl=(?P<ctrl_id>{NUM}) "          # l2tp_ctrl.c l2tp_ctrl_log
_L2TP_CALL = rf"l2tpd ctrl=(?P<ctrl_id>{NUM}) call=(?P<call_id>{NUM}) "  # l2tp_call.c:855
_CHAP = _PPP + r"layer=chap proto=(?P<auth>chap|mschap_v2|unknown) "    # chap.c chap_log
_PAP = _PPP + r"layer=(?P<auth>pap) "                                   # pap.c pap_log
_FSM = _PPP + r"layer=(?:lcp|ipcp|ccp) "                        # fsm.c:806 fsm_log
_BASE = _PPP + r"layer=base "                                           # ppp.c ppp_log
_USER = r'username="(?P<user>.*)"'

NPPPD_PATTERNS = (
    # l2tp_ctrl.c:1338 l2tp_ctrl_recv_SCCRQ; hostname and vendor are the client's AVPs.
    _p("l2tp-start", "l2tp_ctrl.c:1338", _L2TP_CTRL
       + rf"logtype=Started RecvSCCRQ from=(?:(?P<peer>{ADDR})|error):(?:(?P<port>{NUM})|error)/udp "
       rf"tunnel_id={NUM}/{NUM} protocol=[0-9]+\.[0-9]+ winsize=[0-9]+ "
       r"hostname=(?P<hostname>.*) vendor=(?P<vendor>.*) firm=(?P<firmware>[0-9A-F]{4,})"),
    _p("l2tp-finished", "l2tp_ctrl.c:338", _L2TP_CTRL + r"logtype=Finished"),
    _p("l2tp-timeout", "l2tp_ctrl.c:485", _L2TP_CTRL
       + r"(?P<detail>timeout waiting ack for hello packets\.)"),
    _p("l2tp-timeout", "l2tp_ctrl.c:495", _L2TP_CTRL
       + r"(?P<detail>timeout waiting ack for ctrl packets\.)"),
    _p("l2tp-timeout", "l2tp_ctrl.c:539", _L2TP_CTRL + r"(?P<detail>timeout waiting call)"),
    _p("l2tp-stop", "l2tp_ctrl.c:1398", _L2TP_CTRL + r"(?P<detail>SendStopCCN result=.*)"),
    _p("l2tp-stop", "l2tp_ctrl.c:1496", _L2TP_CTRL + r"(?P<detail>RecvStopCCN result=.*)"),
    # Lifecycle lines read but not needed for a verdict: known, so not "unmatched".
    _p("info", "l2tp_ctrl.c:945 :1048 :1610 :1652", _L2TP_CTRL + r"(?:RecvZLB|RecvSCCN|SendSCCRP|SendZLB)"),
    _p("info", "l2tp_call.c:425", _L2TP_CALL + rf"SendICRP session_id={NUM}"),
    _p("info", "l2tp_call.c:613", _L2TP_CALL + rf"RecvICCN session_id={NUM} .*"),
    _p("info", "l2tp_call.c:830", _L2TP_CALL + r"SendZLB"),
    _p("info", "ppp.c:1143", _BASE + r"Using pipex=(?:yes|no)"),
    _p("info", "ipcp.c:260 :424 ccp.c:221 lcp.c:1020", _FSM
       + r"(?:IP Address peer=.* our=.*\.|IPCP is stopped|CCP is stopped|RecvId magic=.*)"),
    _p("info", "mppe.c:197", _PPP + r"layer=mppe logtype=Opened our=.* peer=.*"),
    _p("info", "npppd.c:261", rf"Starting npppd pid={NUM} version=\S+"),
    _p("info", "npppd.c:214", r"Terminate npppd\."),
    _p("l2tp-call", "l2tp_call.c:379", _L2TP_CALL + rf"RecvICRQ session_id={NUM}"),
    _p("l2tp-bind", "l2tp_call.c:1028", _L2TP_CALL + r"logtype=PPPBind ppp=(?P<ppp_id>[0-9]{1,20})"),
    _p("l2tp-unbind", "l2tp_call.c:979", _L2TP_CALL + r"logtype=PPPUnbind"),
    _p("l2tp-cdn", "l2tp_call.c:714", _L2TP_CALL + r"(?P<detail>RecvCDN result=.*)"),
    _p("l2tp-cdn", "l2tp_call.c:811", _L2TP_CALL + r"(?P<detail>SendCDN result=.*)"),
    # ppp.c:239 ppp_start: "tunnel=%s(%s)", the npppd.conf tunnel name and IP:port.
    _p("ppp-start", "ppp.c:239", _BASE
       + rf"logtype=Started tunnel=(?P<detail>[^(]*)\((?P<peer>{ADDR}):(?P<port>{NUM})\)"),
    # ppp.c:668 ppp_ipcp_opened: "auth=%s %s iface=%s%s" where the second %s is " ip=A[:M]",
    # so two spaces stand before ip=.
    _p("tunnel-start", "ppp.c:668", _BASE
       + rf'logtype=TUNNELSTART user="(?P<user>.*)" duration=(?P<duration_s>{NUM})sec '
       rf"layer2=(?P<detail>\S+) layer2from=(?P<peer>{ADDR}):(?P<port>{NUM}) "
       rf"auth=(?P<auth>\S+)  ip=(?P<assigned_ip>{IPV4})(?::{IPV4})? "
       r"iface=(?P<iface>.+?)(?: dialin_proxy=yes)?"),
    # ppp.c:388 ppp_stop0.  user "<unknown>" and auth "none" when no login succeeded.
    _p("tunnel-usage", "ppp.c:388", _BASE
       + rf'logtype=TUNNELUSAGE user="(?P<user>.*)" duration=(?P<duration_s>{NUM})sec '
       rf"layer2=(?P<detail>\S+) layer2from=(?P<peer>{ADDR}):(?P<port>{NUM}) "
       rf"auth=(?P<auth>\S+) data_in=(?P<bytes_in>{NUM})bytes,(?P<packets_in>{NUM})packets "
       rf"data_out=(?P<bytes_out>{NUM})bytes,(?P<packets_out>{NUM})packets "
       rf"error_in={NUM} error_out={NUM} mppe=(?:no|yes mppe_in=\S+ mppe_out=\S+) "
       r"iface=(?P<iface>.+)"),
    _p("no-ppp-frames", "ppp.c:363", _BASE
       + r"(?P<detail>no PPP frames from the peer\.  router/NAT issue\? \(may have filtered out\))"),
    _p("no-ppp-frames", "ppp.c:366", _BASE
       + r"(?P<detail>my PPP frames may not have arrived at the peer\.  router/NAT issue\? "
       r"\(may be the only-first-person problem\))"),
    _p("auth-protocol", "ppp.c:464", _BASE
       + r"(?P<detail>MPPE is required, auth protocol must be MS-CHAP-V2 or EAP)"),
    _p("no-interface", "ppp.c:563", _BASE + r"No interface binding\."),
    _p("idle-timeout", "ppp.c:622", _BASE + rf"Idle timeout\((?P<detail>{NUM}) sec\)"),
    _p("session-limit", "npppd.c:2255", _BASE
       + rf"(?P<detail>Number of sessions reaches out of the limit={NUM})"),
    _p("session-limit", "npppd.c:2246", _BASE
       + rf"(?P<detail>Number of sessions per IPCP reaches out of the limit={NUM})"),
    _p("session-limit", "npppd.c:905", _BASE
       + r"user (?P<user>.*) exceeds user-max-session limit per auth"),
    _p("session-limit", "npppd.c:911", _BASE + r"user (?P<user>.*) exceeds user-max-session limit"),
    _p("pool-exhausted", "npppd.c:1677", _BASE + r"No free address in the pool\."),
    _p("pool-exhausted", "npppd.c:1659", _BASE
       + rf"(?P<detail>Requested IP address \({IPV4}\)/{NUM} is .*)"),
    # chap.c:442 / chap.c:453 chap_response; pap.c:309 / pap.c:319 pap_response.
    _p("auth-failure", "chap.c:442", _CHAP + r"logtype=Failure " + _USER + r" realm=(?P<detail>.*)"),
    _p("auth-success", "chap.c:453", _CHAP + r"logtype=Success " + _USER + r" realm=(?P<detail>.*)"),
    _p("auth-failure", "pap.c:309", _PAP + r"logtype=Failure " + _USER + r" realm=(?P<detail>.*)"),
    _p("auth-success", "pap.c:319", _PAP + r"logtype=Success " + _USER + r" realm=(?P<detail>.*)"),
    # chap.c:552 (MD5-CHAP) and chap.c:651 (MS-CHAPv2): npppd_get_user_password() said 1.
    _p("user-unknown", "chap.c:552 chap.c:651", _CHAP + _USER + r" user unknown"),
    _p("password-mismatch", "chap.c:673", _CHAP + _USER + r" password mismatch\."),
    _p("chap-timeout", "chap.c:230", _CHAP + r"Client did't respond our challenage\."),
    _p("auth-protocol", "chap.c:194", _CHAP
       + r"(?P<detail>mppe is required but try to start chap type=0x[0-9a-f]{2})"),
    _p("auth-protocol", "lcp.c:213", _FSM + r"failed to negotiate a auth protocol\."),
    _p("auth-protocol", "lcp.c:744", _FSM
       + r"No authentication protocols are agreeable\.  peer's auth proto=(?P<auth>.*)"),
    _p("auth-protocol", "lcp.c:854", _FSM + r"No authentication protocols are agreeable\."),
    _p("lcp-opened", "lcp.c:234", _FSM
       + rf"logtype=Opened mru={NUM}/{NUM} auth=(?P<auth>\S+) magic=[0-9a-f]{{8}}/[0-9a-f]{{8}}"),
    _p("keepalive-failure", "lcp.c:958", _FSM + r"keepalive failure\."),
    _p("config-timeout", "fsm.c:304", _FSM + r"timeout sending Config-Requests\s*"),
    _p("terminated-by-peer", "fsm.c:606", _FSM + r"terminated by peer"),
    _p("pool-exhausted", "ipcp.c:134", _FSM + r"failed to assign ip address\."),
    _p("ipcp-opened", "ipcp.c:403", _FSM
       + rf"logtype=Opened ip=(?P<assigned_ip>{IPV4}) assignType=(?P<detail>\S+)"),
    # npppd.c:2117, log_printf without a ppp prefix.
    _p("realm-unbound", "npppd.c:2117", r"user='(?P<user>.*)' could not bind any realms"),
)

ISAKMPD_PATTERNS = (
    # message.c:1903 message_drop: the only line naming the peer of a failed exchange.
    _p("ike-dropped", "message.c:1903",
       rf"dropped message from (?:(?P<peer>{ADDR})|<unknown>) port (?P<port>-?{NUM}) "
       r"due to notification type (?P<notification>\S+)"),
    _p("ike-giving-up", "transport.c:325",
       rf"transport_send_messages: giving up on exchange (?P<detail>.*), no response from peer "
       rf"(?P<peer>{ADDR}):(?P<port>{NUM})"),
    _p("ike-giving-up", "transport.c (before 6.x)",
       r"transport_send_messages: giving up on message [0-9a-fx]+(?:, exchange (?P<detail>.*))?"),
    _p("ike-psk-hint", "message.c:1334",
       rf"message_recv: invalid payload type {NUM} in ISAKMP header \(check passphrases, "
       r"if applicable and in Phase 1\)"),
    _p("ike-psk-hint", "message.c:257",
       r"(?P<detail>message_parse_payloads: invalid next payload type \S+ in payload of type [0-9]+)"),
    _p("ike-psk-hint", "message.c:266",
       r"(?P<detail>message_parse_payloads: reserved field non-zero: [0-9a-f]+)"),
    _p("ike-psk-hint", "message.c:286",
       rf"(?P<detail>message_parse_payloads: payload too short: {NUM})"),
    _p("ike-psk-hint", "message.c:294",
       rf"(?P<detail>message_parse_payloads: payload too long: {NUM})"),
    _p("ike-no-key", "ike_auth.c:151",
       r'ike_auth_get_key: no key found for peer "(?P<peer>.*)" or local ID "(?P<detail>.*)"'),
    _p("ike-attribute", "ike_phase_1.c:1309",
       r"attribute_unacceptable: (?P<attribute>[A-Z_]+): got (?P<got>\S+), expected (?P<expected>\S+)"),
    _p("ike-attribute", "ike_phase_1.c:1389",
       r"attribute_unacceptable: (?P<attribute>LIFE_DURATION): got (?P<got>-?[0-9]+),  "
       r"expected (?P<expected>\S+)"),
    _p("ike-attribute", "ike_phase_1.c:1287",
       r"attribute_unacceptable: attr (?P<attribute>\S+) does not exist in (?P<detail>\S+)"),
    _p("ike-no-proposal", "message.c:2259", r"message_negotiate_sa: no compatible proposal found"),
    _p("ike-invalid-id", "ike_quick_mode.c:1782",
       r"responder_recv_HASH_SA_NONCE: peer proposed invalid phase 2 IDs: (?P<detail>.*)"),
    _p("ike-invalid-hash", "message.c:765", r"message_validate_hash: invalid hash information"),
    # exchange.c:1451 / ike_quick_mode.c:1472, only with isakmpd -v.  Which address in the
    # transport part is the peer was not verified, so no peer is taken from them.
    _p("ike-phase1-done", "exchange.c:1451", r"isakmpd: phase 1 done(?P<detail>.*)"),
    _p("ike-quick-done", "ike_quick_mode.c:1472", r"isakmpd: quick mode done(?P<detail>.*)"),
)

def _by_key(patterns: tuple[tuple[str, str, re.Pattern[str]], ...]
            ) -> dict[str, tuple[tuple[str, str, re.Pattern[str]], ...]]:
    """npppd patterns by the message's first word, and `ppp id=` ones by their layer,
    so a line is tried against a handful of patterns, not all of them."""
    keys: dict[str, list[tuple[str, str, re.Pattern[str]]]] = {}
    for entry in patterns:
        src = entry[2].pattern
        if src.startswith("ppp id="):
            layers = re.findall(r"layer=\(\?:([a-z|]+)\)|layer=\(\?P<auth>(pap)\)|layer=([a-z]+)",
                                src)
            names = {n for group in layers for part in group for n in part.split("|") if n}
            for name in names:
                keys.setdefault("ppp:" + name, []).append(entry)
        elif src.startswith("l2tpd"):
            keys.setdefault("l2tpd", []).append(entry)
        else:
            keys.setdefault("", []).append(entry)
    return {k: tuple(v) for k, v in keys.items()}


_NPPPD_BY_KEY = _by_key(NPPPD_PATTERNS)
_PPP_LAYER = re.compile(r"ppp id=[0-9]+ layer=([a-z_0-9]+) ")


def _npppd_candidates(message: str) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    if message.startswith("ppp id="):
        m = _PPP_LAYER.match(message)
        return _NPPPD_BY_KEY.get("ppp:" + m.group(1), ()) if m else ()
    if message.startswith("l2tpd "):
        return _NPPPD_BY_KEY.get("l2tpd", ())
    return _NPPPD_BY_KEY.get("", ())


# Every pattern captures these as NUM (or -NUM): int() always takes them.  A
# value getnameinfo() could not give ("error", "<unknown>") is matched outside
# the group, so the field is absent.
_INT_FIELDS = ("ppp_id", "ctrl_id", "call_id", "port", "bytes_in", "bytes_out",
               "packets_in", "packets_out", "duration_s")


def _event(kind: str, source: str, m: re.Match[str], line: SyslogLine) -> Event:
    fields = {name: int(value) if name in _INT_FIELDS else value
              for name, value in m.groupdict().items() if value is not None}
    return Event(kind, line, source, **fields)  # type: ignore[arg-type]


def parse_line(text: str, reference: datetime) -> Record:
    """One line of /var/log/daemon (without its newline) as an Event or Unread."""
    line = parse_syslog_line(text, reference)
    if line is None or line.prog not in DAEMONS:
        if line is not None and line.prog == "" and (r := _REPEATED.fullmatch(line.message)):
            return Event("repeated", line, "syslogd.c fprintlog", repeat=int(r["n"]))
        return Unread("other", text, line)
    patterns = (_npppd_candidates(line.message) if line.prog == "npppd"
                else ISAKMPD_PATTERNS)
    for kind, source, pattern in patterns:
        m = pattern.fullmatch(line.message)
        if m is not None:
            return _event(kind, source, m, line)
    return Unread("unmatched", text, line)


def parse_lines(lines: Iterable[str], reference: datetime) -> Iterator[Record]:
    """Every line, in order.  A `last message repeated N times` line becomes a copy
    of the line before it (same file, same host) with repeat=N."""
    previous: Record | None = None
    for text in lines:
        record = parse_line(text.rstrip("\n"), reference)
        if isinstance(record, Event) and record.kind == "repeated":
            if isinstance(previous, Event) and previous.line.host == record.line.host:
                record = _repeat(previous, record)
            else:
                record = Unread("other", record.line.text, record.line)
        else:
            previous = record
        yield record


def _repeat(previous: Event, marker: Event) -> Event:
    return replace(previous, line=marker.line, repeat=marker.repeat)
