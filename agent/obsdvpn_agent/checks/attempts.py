"""Why a VPN user could not connect, who was connected, and what the logs count.

The daemons log an attempt over several lines that only share keys, never a
user and an address on one line (tests/fixtures/logs/formats.md section 0):

    l2tpd ctrl=C logtype=Started RecvSCCRQ from=IP:PORT/udp ... vendor=V   ctrl -> address
    l2tpd ctrl=C call=K logtype=PPPBind ppp=N                                ctrl -> ppp id
    ppp id=N layer=base logtype=Started tunnel=L2TP(IP:PORT)                 ppp id -> address
    ppp id=N layer=chap proto=mschap_v2 logtype=Failure username="U" ...     ppp id -> user
    dropped message from IP port P due to notification type T               isakmpd: address only

stitch() joins them (keys are per npppd process: ppp ids restart with npppd),
judge each attempt with one verdict from VERDICTS, and why(), history(),
offenders() and update_counts() answer from the attempts or the events.
Everything here is pure: records in, frozen values out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..logcounts import IKE_VERDICT
from ..parsers.syslog import Event, Record

VERDICTS = ("connected", "disconnected", "no-attempt", "psk-mismatch", "no-proposal",
            "no-response", "invalid-id", "unknown-user", "wrong-password", "auth-failed",
            "auth-protocol", "pool-exhausted", "session-limit", "l2tp-timeout",
            "keepalive-lost", "unknown")
# How far an attempt got, in order.
STAGES = ("none", "ike", "l2tp", "lcp", "auth", "ipcp", "connected")

ADVICE = {
    "connected": "Nothing to fix: the session is up (see `obsdvpn-agent sessions`).",
    "disconnected": "The session ended normally; the user can connect again.",
    "no-attempt": ("Nothing from this client reached npppd. If the user did try, the client "
                   "never finished IKE: isakmpd logs nothing for packets pf drops, and without "
                   "`isakmpd -v` nothing for a success either. Check that pf passes UDP 500 and "
                   "4500 and ESP on egress, the server address in the client, and its PSK."),
    "psk-mismatch": ("The client's pre-shared key differs from the `psk` in /etc/ipsec.conf: "
                     "give the user the right key (isakmpd cannot decrypt its main mode "
                     "message 5)."),
    "no-proposal": ("No phase-1 transform the client offered matches /etc/ipsec.conf. Add a "
                    "`main auth ... enc ... group ...` the client offers (Windows and iOS offer "
                    "modp1024/modp2048 with sha1 or sha256; nobody offers ipsecctl's default "
                    "modp3072), then `ipsecctl -f /etc/ipsec.conf`."),
    "no-response": ("The client stopped answering (isakmpd gave up, or npppd saw no PPP frames): "
                    "a NAT or firewall on the path drops UDP 4500 or ESP. Check pf on this host "
                    "(`pfctl -sr`), and for Windows behind NAT set "
                    "AssumeUDPEncapsulationContextOnSendRule=2."),
    "invalid-id": ("The client proposed phase-2 IDs the policy does not allow: the `ike` rule "
                   "must be `proto udp from egress to any port l2tp` (transport mode)."),
    "unknown-user": ("The user name is not in /etc/npppd/npppd-users (or the client sent a "
                     "different name): add the user or correct the client's user name."),
    "wrong-password": ("The user exists but the password does not match npppd-users: reset it "
                       "there and in the client."),
    "auth-failed": ("Authentication failed; PAP and MD5-CHAP do not say whether the user name or "
                    "the password is wrong. Check both against /etc/npppd/npppd-users."),
    "auth-protocol": ("Client and npppd agree on no authentication protocol (or the client never "
                      "answered the challenge): enable MS-CHAP v2 in the client, or allow its "
                      "protocol with `authentication-method` in npppd.conf."),
    "pool-exhausted": ("npppd has no free address in the IPCP pool: enlarge `pool-address` in "
                       "npppd.conf or disconnect stale sessions (`npppctl clear`)."),
    "session-limit": ("A session limit refused the login (`max-session` / `user-max-session` in "
                      "npppd.conf): raise it or end old sessions."),
    "l2tp-timeout": ("The L2TP control connection timed out: the client stopped answering "
                     "inside IPsec (NAT mapping lost, or the client went away). Let it "
                     "reconnect; if it repeats, check NAT keepalives on the path."),
    "keepalive-lost": ("LCP keepalives went unanswered, so npppd closed the session: the client "
                       "vanished or its NAT mapping expired. Let it reconnect."),
    "unknown": ("The log does not say why (the attempt is in progress, or its lines are not "
                "in the log read). Look at the evidence lines."),
}


@dataclass(frozen=True)
class Attempt:
    """One connection attempt: an IKE exchange that failed, or one L2TP/PPP session."""

    kind: str                      # "ike" | "ppp" | "l2tp"
    at: datetime                   # first line
    last: datetime                 # last line
    verdict: str
    stage: str
    peer: str | None = None
    port: int | None = None
    user: str | None = None
    ppp_id: int | None = None
    ctrl_id: int | None = None
    auth: str | None = None
    vendor: str | None = None
    hostname: str | None = None
    duration_s: int | None = None
    bytes_in: int | None = None
    bytes_out: int | None = None
    iface: str | None = None
    assigned_ip: str | None = None
    ended: bool = False
    offered: tuple[tuple[str, str], ...] = ()    # (IKE attribute, value the client offered)
    expected: tuple[tuple[str, str], ...] = ()   # (IKE attribute, value the policy wants)
    notification: str | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stitched:
    """The attempts of a log, oldest first."""

    attempts: tuple[Attempt, ...]


# --- stitching ----------------------------------------------------------------------------

@dataclass
class _Session:
    pid: int | None
    ppp_id: int | None
    ctrl: _Ctrl | None
    events: list[Event] = field(default_factory=list)


@dataclass
class _Ctrl:
    pid: int | None
    ctrl_id: int
    start: Event | None
    events: list[Event] = field(default_factory=list)
    sessions: list[_Session] = field(default_factory=list)


_IKE_HELPERS = ("ike-attribute", "ike-no-proposal", "ike-psk-hint", "ike-invalid-id",
                "ike-invalid-hash")
# isakmpd logs the lines of one message back to back; older helpers belong to another.
_IKE_JOIN_S = 10
MAX_EVIDENCE = 40


def stitch(records: Iterable[Record]) -> Stitched:
    """Join the lines of each attempt, in log order (interleaved attempts are fine)."""
    ctrls: dict[tuple[int | None, int], _Ctrl] = {}
    sessions: dict[tuple[int | None, int], _Session] = {}
    order: list[_Session | _Ctrl | Attempt] = []
    pending: dict[int | None, list[Event]] = {}
    last_ike: dict[str, int] = {}   # peer -> index in order of its latest IKE attempt

    def session_for(pid: int | None, ppp_id: int, ctrl: _Ctrl | None, fresh: bool) -> _Session:
        key = (pid, ppp_id)
        s = sessions.get(key)
        if s is None or (fresh and _ended(s)):
            s = _Session(pid, ppp_id, ctrl)
            sessions[key] = s
            order.append(s)
            if ctrl is not None:
                ctrl.sessions.append(s)
        return s

    for r in records:
        if not isinstance(r, Event):
            continue
        pid = r.line.pid
        if r.line.prog == "isakmpd":
            if r.kind in _IKE_HELPERS:
                pending.setdefault(pid, []).append(r)
                continue
            if r.kind in ("ike-dropped", "ike-giving-up", "ike-no-key"):
                helpers = [h for h in pending.pop(pid, [])
                           if (r.line.at - h.line.at).total_seconds() <= _IKE_JOIN_S]
                attempt = _ike_attempt(r, helpers)
                if attempt.peer is not None and attempt.peer in last_ike:
                    i = last_ike[attempt.peer]
                    prev = order[i]
                    if isinstance(prev, Attempt) and (r.line.at - prev.last).total_seconds() <= 2:
                        order[i] = _merge_ike(prev, attempt)
                        continue
                order.append(attempt)
                if attempt.peer is not None:
                    last_ike[attempt.peer] = len(order) - 1
            continue
        if r.line.prog != "npppd":
            continue
        if r.kind == "l2tp-start" and r.ctrl_id is not None:
            c = _Ctrl(pid, r.ctrl_id, r, [r])
            ctrls[(pid, r.ctrl_id)] = c
            order.append(c)
        elif r.ctrl_id is not None and r.kind.startswith("l2tp-"):
            found = ctrls.get((pid, r.ctrl_id))
            if found is None:
                found = _Ctrl(pid, r.ctrl_id, None)
                ctrls[(pid, r.ctrl_id)] = found
                order.append(found)
            c = found
            if r.kind == "l2tp-bind" and r.ppp_id is not None:
                session_for(pid, r.ppp_id, c, fresh=True).events.append(r)
            else:
                c.events.append(r)
                # A timeout or stop of the control connection ends its sessions too.
                for s in c.sessions:
                    if not _ended(s):
                        s.events.append(r)
        elif r.ppp_id is not None:
            session_for(pid, r.ppp_id, None, fresh=r.kind == "ppp-start").events.append(r)
    out: list[Attempt] = []
    for item in order:
        if isinstance(item, Attempt):
            out.append(item)
        elif isinstance(item, _Session):
            out.append(_ppp_attempt(item))
        elif not item.sessions:
            out.append(_l2tp_attempt(item))
    return Stitched(tuple(sorted(out, key=lambda a: a.at)))


def _ended(s: _Session) -> bool:
    return any(e.kind == "tunnel-usage" for e in s.events)


def _lines(events: Iterable[Event]) -> tuple[str, ...]:
    return _lines_text(tuple(e.line.text for e in events))


def _is_address(text: str | None) -> bool:
    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return False
    return True


def _ike_attempt(final: Event, helpers: list[Event]) -> Attempt:
    kinds = {h.kind for h in helpers}
    if final.kind == "ike-giving-up":
        verdict = "no-response"
    elif final.kind == "ike-no-key":
        verdict = "psk-mismatch"
    else:
        verdict = IKE_VERDICT.get(final.notification or "", "unknown")
        if verdict == "unknown" and "ike-psk-hint" in kinds:
            verdict = "psk-mismatch"
    offered = tuple((h.attribute, h.got) for h in helpers
                    if h.kind == "ike-attribute" and h.attribute and h.got)
    expected = tuple(dict.fromkeys((h.attribute, h.expected) for h in helpers
                                   if h.kind == "ike-attribute" and h.attribute and h.expected))
    peer = final.peer if _is_address(final.peer) else None
    return Attempt("ike", (helpers[0] if helpers else final).line.at, final.line.at, verdict,
                   "ike", peer=peer, port=final.port, offered=offered, expected=expected,
                   notification=final.notification, evidence=_lines([*helpers, final]))


def _merge_ike(a: Attempt, b: Attempt) -> Attempt:
    verdict = a.verdict if a.verdict != "unknown" else b.verdict
    return replace(a, last=b.last, verdict=verdict, offered=a.offered + b.offered,
                   expected=tuple(dict.fromkeys(a.expected + b.expected)),
                   notification=a.notification or b.notification,
                   evidence=_lines_text(a.evidence + b.evidence))


def _lines_text(lines: tuple[str, ...]) -> tuple[str, ...]:
    """The evidence: at most MAX_EVIDENCE lines, the first and the last half."""
    if len(lines) > MAX_EVIDENCE:
        return lines[:MAX_EVIDENCE // 2] + ("...",) + lines[-MAX_EVIDENCE // 2:]
    return lines




def _ppp_attempt(s: _Session) -> Attempt:
    ev = s.events
    kinds = {e.kind for e in ev}
    ctrl_start = s.ctrl.start if s.ctrl is not None else None
    started = next((e for e in ev if e.kind == "ppp-start"), None)
    usage = next((e for e in ev if e.kind == "tunnel-usage"), None)
    tstart = next((e for e in ev if e.kind == "tunnel-start"), None)
    peer_ev = started or tstart or usage or ctrl_start
    user = next((e.user for e in ev if e.user and e.kind in (
        "auth-failure", "auth-success", "user-unknown", "password-mismatch", "tunnel-start",
        "tunnel-usage")
        and e.user != "<unknown>"), None)
    l2tp_timeout = "l2tp-timeout" in kinds
    failure = _ppp_failure(kinds)
    if tstart is not None:
        if "keepalive-failure" in kinds:
            verdict = "keepalive-lost"
        elif l2tp_timeout:
            verdict = "l2tp-timeout"
        elif usage is not None:
            verdict = "disconnected"
        else:
            verdict = "connected"
    elif failure is not None:
        verdict = failure
    elif usage is not None and usage.user != "<unknown>":
        verdict = "disconnected"   # its TUNNELSTART is before the log read
    else:
        verdict = "unknown"
    if tstart is not None or verdict == "disconnected":
        stage = "connected"
    elif "auth-success" in kinds:
        stage = "ipcp"
    elif kinds & {"auth-failure", "user-unknown", "password-mismatch", "lcp-opened",
                  "chap-timeout"}:
        stage = "auth"
    elif started is not None:
        stage = "lcp"
    else:
        stage = "l2tp"
    first = ctrl_start if ctrl_start is not None else ev[0]
    events = ([ctrl_start] if ctrl_start is not None else []) + ev
    final = usage or tstart
    return Attempt(
        "ppp", first.line.at, ev[-1].line.at, verdict, stage,
        peer=peer_ev.peer if peer_ev else None, port=peer_ev.port if peer_ev else None,
        user=user, ppp_id=s.ppp_id, ctrl_id=s.ctrl.ctrl_id if s.ctrl else None,
        auth=final.auth if final else None,
        vendor=ctrl_start.vendor if ctrl_start else None,
        hostname=ctrl_start.hostname if ctrl_start else None,
        duration_s=usage.duration_s if usage else None,
        bytes_in=usage.bytes_in if usage else None, bytes_out=usage.bytes_out if usage else None,
        iface=final.iface if final else None,
        assigned_ip=tstart.assigned_ip if tstart else None,
        ended=usage is not None, evidence=_lines(events))


def _ppp_failure(kinds: set[str]) -> str | None:
    """The verdict of a session that never started, most telling line first."""
    for kind, verdict in (("user-unknown", "unknown-user"), ("password-mismatch", "wrong-password"),
                          ("auth-failure", "auth-failed"), ("auth-protocol", "auth-protocol"),
                          ("chap-timeout", "auth-protocol"), ("pool-exhausted", "pool-exhausted"),
                          ("session-limit", "session-limit"), ("keepalive-failure", "keepalive-lost"),
                          ("l2tp-timeout", "l2tp-timeout"), ("no-ppp-frames", "no-response"),
                          ("config-timeout", "no-response")):
        if kind in kinds:
            return verdict
    return None


def _l2tp_attempt(c: _Ctrl) -> Attempt:
    kinds = {e.kind for e in c.events}
    verdict = "l2tp-timeout" if "l2tp-timeout" in kinds else "unknown"
    s = c.start
    return Attempt("l2tp", c.events[0].line.at, c.events[-1].line.at, verdict, "l2tp",
                   peer=s.peer if s else None, port=s.port if s else None, ctrl_id=c.ctrl_id,
                   vendor=s.vendor if s else None, hostname=s.hostname if s else None,
                   ended="l2tp-finished" in kinds, evidence=_lines(c.events))


def _stitched(records: Sequence[Record] | Stitched) -> Stitched:
    return records if isinstance(records, Stitched) else stitch(records)


# --- why ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WhyAnswer:
    query: str
    verdict: str
    stage: str
    advice: str
    summary: str
    at: datetime | None = None
    peer: str | None = None
    user: str | None = None
    evidence: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    offered: tuple[str, ...] = ()
    expected: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"query": self.query, "verdict": self.verdict, "stage": self.stage,
                "at": self.at.isoformat() if self.at else None, "peer": self.peer,
                "user": self.user, "summary": self.summary, "advice": self.advice,
                "notes": list(self.notes), "offered": list(self.offered),
                "expected": self.expected, "evidence": list(self.evidence)}


FAILED_LOGIN = ("unknown-user", "wrong-password", "auth-failed")


def _user_matches(attempt_user: str | None, query: str) -> bool:
    if attempt_user is None:
        return False
    # MS-CHAPv2 clients may send DOMAIN\user; npppd strips the domain (chap.c strip_nt_domain).
    return attempt_user == query or attempt_user.rsplit("\\", 1)[-1] == query


def why(query: str, since: datetime | None, records: Sequence[Record] | Stitched,
        known_users: Iterable[str] = (), expected_phase1: str | None = None) -> WhyAnswer:
    """The latest attempt of a user or from an address since `since`, judged."""
    attempts = _stitched(records).attempts
    # A session still up counts whenever it started.
    recent = [a for a in attempts
              if since is None or a.last >= since or a.verdict == "connected"]
    known = set(known_users)
    notes: tuple[str, ...] = ()
    if _is_address(query):
        address = str(ipaddress.ip_address(query))
        mine = [a for a in recent if a.peer == address]
        notes = _address_notes(mine)
        if not mine:
            return _answer(query, None, expected_phase1, notes=(
                f"no isakmpd or npppd line names {address}"
                + (f" since {since:%b %d %H:%M}" if since else "") + ".",))
        return _answer(query, mine[-1], expected_phase1, notes=notes)
    mine = [a for a in recent if _user_matches(a.user, query)]
    if known and query not in known:
        notes = (f"{query} is not in npppd-users.",)
    # isakmpd names no user, npppd none before authentication: attempts without a user
    # from the addresses this user connected from before may be theirs.
    before = {a.peer for a in attempts if _user_matches(a.user, query) and a.peer}
    if not (mine and mine[-1].verdict == "connected"):
        mine += [a for a in recent if a.user is None and a.peer in before]
    if mine:
        latest = max(mine, key=lambda a: a.at)
        if latest.user is None:
            notes += ((f"no later PPP login by {query}; this attempt from {latest.peer}, an "
                       f"address {query} connected from before, names no user (isakmpd logs "
                       "none, npppd none before authentication)."),)
        return _answer(query, latest, expected_phase1, user=query, notes=notes)
    return _answer(query, None, expected_phase1, user=query, notes=notes + (
        f"no line names {query}" + (f" since {since:%b %d %H:%M}" if since else "")
        + (f"; {query} connected from {', '.join(sorted(before))} before." if before else "."),))


def _address_notes(mine: list[Attempt]) -> tuple[str, ...]:
    failed = [a for a in mine if a.verdict in FAILED_LOGIN]
    if len(failed) < 2:
        return ()
    names = {a.user for a in failed if a.user}
    notes: tuple[str, ...] = (
        f"{len(failed)} failed logins from this address, {len(names)} user name(s).",)
    if len(names) >= 3:
        notes += (("many names from one address: likely a brute-force run; "
                   "`obsdvpn-agent offenders` lists such addresses for a pf table "
                   "(nothing is blocked automatically)."),)
    return notes


def _answer(query: str, a: Attempt | None, expected_phase1: str | None,
            user: str | None = None, notes: tuple[str, ...] = ()) -> WhyAnswer:
    if a is None:
        return WhyAnswer(query, "no-attempt", "none", ADVICE["no-attempt"],
                         f"no attempt by {query} in the log", user=user, notes=notes)
    offered = tuple(f"{attr} {got}" for attr, got in dict.fromkeys(a.offered))
    expected = expected_phase1
    if a.verdict == "no-proposal" and expected is None and a.expected:
        expected = ", ".join(f"{attr} {value}" for attr, value in a.expected)
    summary = _summary(a, offered, expected)
    return WhyAnswer(query, a.verdict, a.stage, ADVICE[a.verdict], summary, a.at, a.peer,
                     a.user or user, a.evidence, notes, offered,
                     expected if a.verdict == "no-proposal" else None)


def _summary(a: Attempt, offered: tuple[str, ...], expected: str | None) -> str:
    who = f"{a.user} " if a.user else ""
    where = f"from {a.peer}" if a.peer else "from an address the log does not name"
    when = f"{a.at:%b %d %H:%M:%S}"
    text = {
        "connected": f"{who}connected {where} at {when}"
                     + (f" as {a.assigned_ip} on {a.iface}" if a.assigned_ip else ""),
        "disconnected": f"{who}was connected {where} at {when} for {a.duration_s} s and "
                        "disconnected",
        "keepalive-lost": f"{who}{where} lost the session at {a.last:%H:%M:%S} (LCP keepalive)",
        "l2tp-timeout": f"{who}{where}: the L2TP control connection timed out at "
                        f"{a.last:%H:%M:%S}",
        "unknown-user": f"npppd does not know the user name {a.user!r} ({where}, {when})",
        "wrong-password": f"{who}{where} sent a wrong password at {when}",
        "auth-failed": f"{who}{where} failed authentication at {when}",
        "auth-protocol": f"{who}{where}: no common authentication protocol at {when}",
        "pool-exhausted": f"{who}{where} authenticated but got no address (pool full) at {when}",
        "session-limit": f"{who}{where} was refused by a session limit at {when}",
        "psk-mismatch": f"IKE {where} failed at {when}: pre-shared key mismatch",
        "no-proposal": f"IKE {where} failed at {when}: no acceptable phase-1 proposal",
        "no-response": f"{who}{where} stopped answering at {when}",
        "invalid-id": f"IKE {where} failed at {when}: invalid phase-2 IDs",
        "unknown": f"{who}{where} at {when}: the log does not say how it ended",
    }[a.verdict]
    if a.verdict == "no-proposal":
        text += ("; the client offered " + "; ".join(offered) if offered
                 else "; isakmpd did not log what the client offered")
        text += f"; ipsec.conf expects {expected}" if expected else ""
    return text


# --- history and offenders ------------------------------------------------------------------

@dataclass(frozen=True)
class EndedSession:
    """A session npppd closed, from its TUNNELUSAGE line (ppp.c:388)."""

    user: str
    peer: str | None
    port: int | None
    start: datetime          # end minus duration (npppd counts it on the monotonic clock)
    end: datetime
    duration_s: int
    bytes_in: int
    bytes_out: int
    auth: str | None
    vendor: str | None
    iface: str | None

    def to_json(self) -> dict[str, object]:
        return {"user": self.user, "peer": self.peer, "port": self.port,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "duration_s": self.duration_s, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "auth": self.auth, "vendor": self.vendor,
                "iface": self.iface}


def history(records: Sequence[Record] | Stitched, user: str | None = None
            ) -> tuple[EndedSession, ...]:
    out = []
    for a in _stitched(records).attempts:
        if a.kind != "ppp" or not a.ended or a.user is None or a.verdict not in (
                "disconnected", "keepalive-lost", "l2tp-timeout"):
            continue
        if user is not None and not _user_matches(a.user, user):
            continue
        duration = a.duration_s or 0
        out.append(EndedSession(a.user, a.peer, a.port, a.last - timedelta(seconds=duration),
                                a.last, duration, a.bytes_in or 0, a.bytes_out or 0, a.auth,
                                a.vendor, a.iface))
    return tuple(out)


@dataclass(frozen=True)
class Offender:
    address: str
    failed_logins: int
    user_names: int
    ike_failures: int
    last: datetime


def offenders(records: Sequence[Record] | Stitched, since: datetime | None = None,
              minimum: int = 1) -> tuple[Offender, ...]:
    """Addresses with failed logins (and failed IKE), most first: candidates for a pf table."""
    by: dict[str, list[Attempt]] = {}
    for a in _stitched(records).attempts:
        if a.peer and (since is None or a.last >= since) and (
                a.verdict in FAILED_LOGIN or (a.kind == "ike" and a.verdict != "unknown")):
            by.setdefault(a.peer, []).append(a)
    out = []
    for address, items in by.items():
        logins = [a for a in items if a.verdict in FAILED_LOGIN]
        ike = [a for a in items if a.kind == "ike"]
        if len(logins) + len(ike) >= minimum:
            out.append(Offender(address, len(logins), len({a.user for a in logins if a.user}),
                                len(ike), max(a.last for a in items)))
    return tuple(sorted(out, key=lambda o: (-o.failed_logins, -o.ike_failures, o.address)))
