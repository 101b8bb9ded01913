"""Running totals of what isakmpd and npppd logged, kept across collections.

The logs collector (probes) reads the new lines of the daemon log, parses
them (parsers.syslog) and adds them here to the totals it keeps beside the
read position (host.logfile), so a restart neither recounts nor misses a
line.  Each counter's label values are a fixed set: a failed login's user
name or a peer address, chosen by whoever connects, is never one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .parsers.syslog import Event, Record, Unread

# Bounded label values of the failure counters.
PPP_AUTH_REASONS = ("unknown-user", "wrong-password", "auth-failed", "auth-protocol")
IKE_REASONS = ("psk-mismatch", "no-proposal", "no-response", "invalid-id", "other")

# message.c message_drop(): the notification type isakmpd answered with.
IKE_VERDICT = {
    "INVALID_PAYLOAD_TYPE": "psk-mismatch",   # message.c:1334 "check passphrases"
    "PAYLOAD_MALFORMED": "psk-mismatch",      # message.c:257-294 on a garbage message 5
    "NO_PROPOSAL_CHOSEN": "no-proposal",      # message.c:2259
    "INVALID_ID_INFORMATION": "invalid-id",   # ike_quick_mode.c:1782
}


MAX_PENDING = 65536   # sessions open at once (a started mark each), plus stray details


@dataclass(frozen=True)
class LogCounts:
    """Running totals of what the log said, kept across collections and restarts.

    `pending` carries, per (npppd pid, ppp id), the detail line seen before the
    `logtype=Failure` line that is counted, in case a read ends between them.
    """

    ppp_auth_failures: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(PPP_AUTH_REASONS, 0))
    ike_failures: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(IKE_REASONS, 0))
    sessions_started: int = 0
    sessions_closed: int = 0
    user_bytes_in: Mapping[str, int] = field(default_factory=dict)
    user_bytes_out: Mapping[str, int] = field(default_factory=dict)
    lines_matched: int = 0
    lines_unmatched: int = 0
    lines_other: int = 0
    pending: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"ppp_auth_failures": dict(self.ppp_auth_failures),
                "ike_failures": dict(self.ike_failures),
                "sessions_started": self.sessions_started,
                "sessions_closed": self.sessions_closed,
                "user_bytes_in": dict(self.user_bytes_in),
                "user_bytes_out": dict(self.user_bytes_out),
                "lines_matched": self.lines_matched, "lines_unmatched": self.lines_unmatched,
                "lines_other": self.lines_other, "pending": dict(self.pending)}

    @classmethod
    def from_dict(cls, data: object) -> LogCounts:
        """Totals kept in the state file; anything malformed starts from zero."""
        if not isinstance(data, dict):
            return cls()

        def counts(key: str, names: Iterable[str] | None) -> dict[str, int]:
            raw = data.get(key)
            if not isinstance(raw, dict):
                raw = {}
            keys = list(names) if names is not None else [k for k in raw if isinstance(k, str)]
            return {k: v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0
                    for k in keys for v in [raw.get(k, 0)]}

        def number(key: str) -> int:
            v = data.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

        pending = data.get("pending")
        return cls(counts("ppp_auth_failures", PPP_AUTH_REASONS),
                   counts("ike_failures", IKE_REASONS), number("sessions_started"),
                   number("sessions_closed"), counts("user_bytes_in", None),
                   counts("user_bytes_out", None), number("lines_matched"),
                   number("lines_unmatched"), number("lines_other"),
                   {k: v for k, v in pending.items() if isinstance(k, str) and isinstance(v, str)}
                   if isinstance(pending, dict) else {})


def ike_reason(e: Event) -> str | None:
    """The IKE failure counter reason of one isakmpd line, or None if it is no failure."""
    if e.kind == "ike-giving-up":
        return "no-response"
    if e.kind == "ike-dropped":
        verdict = IKE_VERDICT.get(e.notification or "")
        return verdict if verdict in IKE_REASONS else "other"
    return None


def update_counts(previous: LogCounts, records: Iterable[Record],
                  known_users: Iterable[str] | None) -> LogCounts:
    """previous + what the new lines say.  Per-user bytes only for users who logged in
    (their session started; with known_users, also one of npppd-users): a failed
    login's user name is chosen by whoever connects, never a label.  known_users
    None: npppd-users is not readable here (the unprivileged serve)."""
    known = None if known_users is None else set(known_users)
    ppp = dict(previous.ppp_auth_failures)
    ike = dict(previous.ike_failures)
    bytes_in = dict(previous.user_bytes_in)
    bytes_out = dict(previous.user_bytes_out)
    pending = dict(previous.pending)
    started, closed = previous.sessions_started, previous.sessions_closed
    matched, unmatched, other = (previous.lines_matched, previous.lines_unmatched,
                                 previous.lines_other)
    for r in records:
        if isinstance(r, Unread):
            if r.result == "unmatched":
                unmatched += 1
            else:
                other += 1
            continue
        matched += 1
        n = r.repeat
        key = f"{r.line.pid}:{r.ppp_id}"
        if r.kind == "user-unknown":
            pending[key] = "unknown-user"
        elif r.kind == "password-mismatch":
            pending[key] = "wrong-password"
        elif r.kind == "auth-failure":
            reason = pending.pop(key, "auth-failed")
            ppp[reason if reason in PPP_AUTH_REASONS else "auth-failed"] += n
        elif r.kind in ("auth-protocol", "chap-timeout"):
            # lcp.c logs two lines for one refusal: count the attempt once.
            if pending.get(key) != "counted-auth-protocol":
                pending[key] = "counted-auth-protocol"
                ppp["auth-protocol"] += n
        elif r.kind == "tunnel-start":
            started += n
            pending[key] = "started"
        elif r.kind == "tunnel-usage":
            # closed pairs with started: a session refused after login (pool, limit) also
            # logs TUNNELUSAGE with its user, but never started.
            logged_in = pending.pop(key, None) == "started"
            if logged_in:
                closed += n
            if r.user is not None and r.user != "<unknown>" and (
                    r.user in known if known is not None else logged_in):
                bytes_in[r.user] = bytes_in.get(r.user, 0) + (r.bytes_in or 0) * n
                bytes_out[r.user] = bytes_out.get(r.user, 0) + (r.bytes_out or 0) * n
        elif (ike_why := ike_reason(r)) is not None:
            ike[ike_why] += n
        while len(pending) > MAX_PENDING:
            pending.pop(next(iter(pending)))
    return LogCounts(ppp, ike, started, closed, bytes_in, bytes_out, matched, unmatched, other,
                     pending)
