"""isakmpd and npppd log lines: the parser, the attempts and verdicts, the counters.

The fixture tests/fixtures/logs/daemon-interleaved.log holds many users'
attempts interleaved, in the exact printf formats of the OpenBSD source (see
tests/fixtures/logs/SOURCES.md and make_interleaved.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from obsdvpn_agent.checks import attempts as A
from obsdvpn_agent.logcounts import LogCounts, update_counts
from obsdvpn_agent.parsers.syslog import (
    Event,
    Unread,
    parse_line,
    parse_lines,
    resolve_year,
)

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
LOG = (FIXTURES / "daemon-interleaved.log").read_text().splitlines()
NOW = datetime(2026, 11, 29, 12, 0, 0)
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "kim")
BRUTE = ("admin", "root", "test", "user", "guest", "vpn", "oracle", "support", "info", "ftp",
         "postgres", "ubnt")


@pytest.fixture(scope="module")
def records():
    return list(parse_lines(LOG, NOW))


@pytest.fixture(scope="module")
def stitched(records):
    return A.stitch(records)


# --- the parser ------------------------------------------------------------------------------

def test_every_isakmpd_and_npppd_line_of_the_fixture_is_understood(records):
    unread = [r for r in records if isinstance(r, Unread)]
    assert [r.result for r in unread].count("unmatched") == 1
    assert [r.text for r in unread if r.result == "unmatched"] == [
        "Nov 28 09:33:21 vpn npppd[71234]: ppp id=99 layer=base a line no printf of npppd writes"]
    assert {r.line.prog for r in unread if r.result == "other" and r.line} == {"sshd", "ntpd"}


def test_fixture_lines_follow_the_printf_formats_of_the_catalog():
    """Every isakmpd/npppd message in the fixture is one of the catalogued printf formats
    (formats_catalog.tsv, OpenBSD 6.9), behind the prefix its log function adds."""
    catalog = [line.split("\t")[3] for line in
               (FIXTURES.parent / "openbsd-samples" / "logs" / "formats_catalog.tsv")
               .read_text().splitlines()]

    def regex(fmt: str) -> str:
        fmt = fmt.replace('\\"', '"')
        out = re.escape(fmt)
        for spec in (r"%08x", r"%04X", r"%02x", r"%llu", r"%lu", r"%ld", r"%qu", r"%u", r"%d",
                     r"%s", r"%x"):
            out = out.replace(re.escape(spec), ".*")
        return out

    patterns = [re.compile(regex(f)) for f in catalog if f]
    prefixes = re.compile(r"(?:ppp id=[0-9]+ layer=(?:base|lcp|ipcp|ccp|pap|mppe|chap "
                          r"proto=(?:chap|mschap_v2|unknown)) |l2tpd ctrl=[0-9]+ (?:call=[0-9]+ )?)?")
    for line in LOG:
        m = re.match(r"[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} vpn (isakmpd|npppd)\[[0-9]+\]: (.*)", line)
        if m is None or "no printf of npppd" in line:
            continue
        body = m.group(2)[prefixes.match(m.group(2)).end():]
        assert any(p.fullmatch(body) for p in patterns), line


def test_tunnelusage_fields():
    text = ('Nov 28 09:30:42 vpn npppd[71234]: ppp id=9 layer=base logtype=TUNNELUSAGE '
            'user="carol" duration=1800sec layer2=L2TP layer2from=198.51.100.33:1701 '
            'auth=MS-CHAP-V2 data_in=5123456bytes,7319packets data_out=40123456bytes,'
            '44581packets error_in=0 error_out=0 mppe=yes mppe_in=128bits,stateless '
            'mppe_out=128bits,stateless iface=pppx1')
    e = parse_line(text, NOW)
    assert isinstance(e, Event) and e.kind == "tunnel-usage" and e.source == "ppp.c:388"
    assert (e.ppp_id, e.user, e.duration_s, e.peer, e.port, e.auth) == (
        9, "carol", 1800, "198.51.100.33", 1701, "MS-CHAP-V2")
    assert (e.bytes_in, e.packets_in, e.bytes_out, e.packets_out, e.iface) == (
        5123456, 7319, 40123456, 44581, "pppx1")
    assert e.line.at == datetime(2026, 11, 28, 9, 30, 42) and e.line.pid == 71234


def test_tunnelstart_has_two_spaces_before_ip():
    # ppp.c:668 "auth=%s %s iface=%s%s" with the second %s " ip=A": two spaces.
    good = ('Nov 28 09:00:12 vpn npppd[1]: ppp id=0 layer=base logtype=TUNNELSTART user="a" '
            'duration=2sec layer2=L2TP layer2from=192.0.2.1:1701 auth=MS-CHAP-V2  '
            'ip=10.0.0.2 iface=pppx0')
    e = parse_line(good, NOW)
    assert isinstance(e, Event) and (e.kind, e.assigned_ip, e.iface) == ("tunnel-start",
                                                                          "10.0.0.2", "pppx0")
    assert isinstance(parse_line(good.replace("  ip=", " ip="), NOW), Unread)


def test_sccrq_vendor_with_spaces_and_getnameinfo_error():
    e = parse_line("Nov  2 01:02:03 vpn npppd[1]: l2tpd ctrl=5 logtype=Started RecvSCCRQ "
                   "from=error:error/udp tunnel_id=5/9 protocol=1.0 winsize=4 "
                   "hostname=my host vendor=Apple Inc. firm=0001", NOW)
    assert isinstance(e, Event) and e.kind == "l2tp-start"
    assert (e.peer, e.port, e.hostname, e.vendor, e.firmware) == (None, None, "my host",
                                                                  "Apple Inc.", "0001")


def test_other_layouts_and_programs_are_not_errors():
    for text in ("", "garbage", "Foo 28 09:00:00 vpn npppd[1]: x",
                 "Nov 31 09:00:00 vpn npppd[1]: l2tpd ctrl=1 logtype=Finished",
                 "Nov 28 09:00:00 vpn sshd[2]: Accepted publickey"):
        r = parse_line(text, NOW)
        assert isinstance(r, Unread) and r.result == "other", text
    r = parse_line("Nov 28 09:00:00 vpn isakmpd[3]: something new", NOW)
    assert isinstance(r, Unread) and r.result == "unmatched"


def test_year_resolution_across_new_year():
    jan1 = datetime(2027, 1, 1, 0, 5)
    assert resolve_year(12, 31, (23, 59, 59), jan1) == datetime(2026, 12, 31, 23, 59, 59)
    assert resolve_year(1, 1, (0, 1, 0), jan1) == datetime(2027, 1, 1, 0, 1)
    # a day of clock skew between hosts is still this year
    assert resolve_year(1, 2, (0, 0, 0), jan1).year == 2027
    assert resolve_year(2, 29, (1, 0, 0), datetime(2027, 3, 1)) == datetime(2024, 2, 29, 1)
    lines = ["Dec 31 23:59:58 vpn npppd[1]: l2tpd ctrl=1 logtype=Finished",
             "Jan  1 00:00:03 vpn npppd[1]: l2tpd ctrl=2 logtype=Finished"]
    years = [r.line.at.year for r in parse_lines(lines, jan1)]
    assert years == [2026, 2027]


def test_last_message_repeated_repeats_the_line_before():
    lines = [("Nov 28 09:00:00 vpn isakmpd[5]: dropped message from 192.0.2.9 port 500 due to "
             "notification type NO_PROPOSAL_CHOSEN"),
             "Nov 28 09:00:30 vpn last message repeated 3 times"]
    out = list(parse_lines(lines, NOW))
    assert isinstance(out[1], Event) and (out[1].kind, out[1].repeat) == ("ike-dropped", 3)
    counts = update_counts(LogCounts(), out, ())
    assert counts.ike_failures["no-proposal"] == 4


# --- verdicts ----------------------------------------------------------------------------------

EXPECTED = {
    "alice": ("connected", "connected", "198.51.100.10"),
    "bob": ("wrong-password", "auth", "203.0.113.20"),
    "carol": ("disconnected", "connected", "198.51.100.33"),     # failed, then succeeded
    "dave": ("no-attempt", "none", None),
    "erin": ("psk-mismatch", "ike", "198.51.100.77"),            # IKE only, from her address
    "frank": ("auth-failed", "auth", "203.0.113.80"),            # PAP
    "grace": ("auth-protocol", "lcp", "198.51.100.88"),          # no user name logged
    "heidi": ("pool-exhausted", "ipcp", "203.0.113.90"),
    "ivan": ("session-limit", "ipcp", "203.0.113.91"),
    "judy": ("l2tp-timeout", "connected", "203.0.113.92"),
    "kim": ("keepalive-lost", "connected", "203.0.113.93"),
    "mallory": ("unknown-user", "auth", "203.0.113.30"),
    **{name: ("unknown-user", "auth", "192.0.2.66") for name in BRUTE},
    "192.0.2.66": ("unknown-user", "auth", "192.0.2.66"),
    "203.0.113.40": ("psk-mismatch", "ike", "203.0.113.40"),
    "203.0.113.50": ("no-proposal", "ike", "203.0.113.50"),
    "203.0.113.60": ("no-response", "ike", "203.0.113.60"),
    "203.0.113.70": ("invalid-id", "ike", "203.0.113.70"),
    "198.51.100.88": ("auth-protocol", "lcp", "198.51.100.88"),
    "198.51.100.10": ("connected", "connected", "198.51.100.10"),
    "203.0.113.91": ("session-limit", "ipcp", "203.0.113.91"),
    "192.0.2.200": ("no-attempt", "none", None),
}


@pytest.mark.parametrize("query", sorted(EXPECTED))
def test_why_gives_the_right_verdict(stitched, query):
    w = A.why(query, None, stitched, USERS)
    assert (w.verdict, w.stage, w.peer) == EXPECTED[query]
    assert w.advice == A.ADVICE[w.verdict]
    if w.verdict != "no-attempt":
        assert w.evidence and all(line in LOG for line in w.evidence)


def test_every_verdict_but_disconnected_failures_is_exercised():
    seen = {v for v, _, _ in EXPECTED.values()}
    assert seen == set(A.VERDICTS) - {"unknown"}


def test_why_user_notes(stitched):
    erin = A.why("erin", None, stitched, USERS)
    assert any("address erin connected from before" in n for n in erin.notes)
    mallory = A.why("mallory", None, stitched, USERS)
    assert "mallory is not in npppd-users." in mallory.notes
    brute = A.why("192.0.2.66", None, stitched, USERS)
    assert brute.notes[0] == "12 failed logins from this address, 12 user name(s)."
    assert "brute-force" in brute.notes[1]


def test_no_proposal_names_offered_and_expected(stitched):
    w = A.why("203.0.113.50", None, stitched, USERS)
    assert w.offered == ("GROUP_DESCRIPTION MODP_2048", "GROUP_DESCRIPTION MODP_1024")
    assert w.expected == "GROUP_DESCRIPTION MODP_3072"
    w = A.why("203.0.113.50", None, stitched, USERS, expected_phase1="aes-128 sha1 modp3072")
    assert w.expected == "aes-128 sha1 modp3072" and "expects aes-128 sha1 modp3072" in w.summary


def test_since_keeps_a_session_still_up(stitched):
    assert A.why("alice", datetime(2026, 11, 28, 11, 0), stitched, USERS).verdict == "connected"


def test_since_excludes_older_attempts(stitched):
    assert A.why("bob", datetime(2026, 11, 28, 9, 30), stitched, USERS).verdict == "no-attempt"
    # erin's PSK failures are at 09:50, after the window starts
    assert A.why("erin", datetime(2026, 11, 28, 9, 45), stitched, USERS).verdict == "psk-mismatch"


def test_why_json_has_the_required_keys(stitched):
    data = A.why("bob", None, stitched, USERS).to_json()
    assert {"query", "verdict", "stage", "at", "peer", "evidence", "advice"} <= set(data)
    assert data["at"] == "2026-11-28T09:01:00" and isinstance(data["evidence"], list)


def test_reused_ppp_ids_after_an_npppd_restart_are_separate_attempts():
    lines = [
        'Nov 28 10:00:00 vpn npppd[100]: ppp id=0 layer=base logtype=Started tunnel=L2TP(192.0.2.1:1701)',
        'Nov 28 10:00:01 vpn npppd[100]: ppp id=0 layer=chap proto=mschap_v2 logtype=Success username="x" realm=LOCAL',
        'Nov 28 10:05:00 vpn npppd[200]: ppp id=0 layer=base logtype=Started tunnel=L2TP(192.0.2.2:1701)',
        'Nov 28 10:05:01 vpn npppd[200]: ppp id=0 layer=chap proto=mschap_v2 username="y" password mismatch.',
        'Nov 28 10:05:01 vpn npppd[200]: ppp id=0 layer=chap proto=mschap_v2 logtype=Failure username="y" realm=LOCAL',
    ]
    s = A.stitch(list(parse_lines(lines, NOW)))
    assert [(a.user, a.peer, a.verdict) for a in s.attempts] == [
        ("x", "192.0.2.1", "unknown"), ("y", "192.0.2.2", "wrong-password")]


# --- history, offenders --------------------------------------------------------------------------

def test_history_lists_the_ended_sessions_with_bytes(stitched):
    rows = {(s.user, s.peer, s.duration_s, s.bytes_in, s.bytes_out, s.vendor)
            for s in A.history(stitched)}
    assert rows == {("carol", "198.51.100.33", 1800, 5123456, 40123456, "Microsoft"),
                    ("erin", "198.51.100.77", 600, 700000, 9000000, "Apple"),
                    ("grace", "198.51.100.88", 300, 1000, 2000, "Microsoft"),
                    ("judy", "203.0.113.92", 708, 300000, 800000, "Microsoft"),
                    ("kim", "203.0.113.93", 998, 4000, 5000, "Microsoft")}
    carol = A.history(stitched, "carol")
    assert len(carol) == 1 and carol[0].start == datetime(2026, 11, 28, 9, 0, 42)
    assert carol[0].end - carol[0].start == timedelta(seconds=1800)


def test_offenders_puts_the_brute_force_address_first(stitched):
    top = A.offenders(stitched, minimum=3)
    assert [(o.address, o.failed_logins, o.user_names) for o in top] == [("192.0.2.66", 12, 12)]


# --- counters ------------------------------------------------------------------------------------

def test_counts(records):
    c = update_counts(LogCounts(), records, USERS)
    assert dict(c.ppp_auth_failures) == {"unknown-user": 13, "wrong-password": 2,
                                         "auth-failed": 1, "auth-protocol": 1}
    assert dict(c.ike_failures) == {"psk-mismatch": 3, "no-proposal": 1, "no-response": 1,
                                    "invalid-id": 1, "other": 0}
    assert (c.sessions_started, c.sessions_closed) == (6, 5)   # alice is still connected
    assert dict(c.user_bytes_in) == {"carol": 5123456, "erin": 700000, "grace": 1000,
                                     "judy": 300000, "kim": 4000, "heidi": 0, "ivan": 0}
    assert c.user_bytes_out["carol"] == 40123456
    assert (c.lines_matched, c.lines_unmatched, c.lines_other) == (len(LOG) - 5, 1, 4)


def test_counts_label_only_npppd_users(records):
    c = update_counts(LogCounts(), records, ("carol",))
    assert set(c.user_bytes_in) == {"carol"} and set(c.user_bytes_out) == {"carol"}
    assert not any(name in c.user_bytes_in for name in BRUTE + ("mallory",))


@pytest.mark.parametrize("cut", [0, 1, 17, 21, 22, 150, 200, len(LOG) - 1, len(LOG)])
def test_counts_are_the_same_however_the_reads_are_cut(records, cut):
    """A read may end between a detail line and its Failure line: the kept totals
    (with their pending details) give the same counts as one read."""
    whole = update_counts(LogCounts(), records, USERS)
    first = update_counts(LogCounts(), records[:cut], USERS)
    kept = LogCounts.from_dict(first.to_dict())       # through the state file
    assert update_counts(kept, records[cut:], USERS) == whole


def test_counts_from_a_damaged_state_start_at_zero():
    assert LogCounts.from_dict({"ppp_auth_failures": {"unknown-user": -3, "x": 2},
                                  "sessions_started": "7", "pending": [1]}) == LogCounts()
    assert LogCounts.from_dict(None) == LogCounts()
