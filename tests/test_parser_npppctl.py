"""Tests of parsers/npppctl.py against the npppctl samples and npppctl.c's printf formats."""

from __future__ import annotations

import pytest

from conftest import SAMPLES, sample_files, sample_id
from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.npppctl import (
    NpppClear,
    PppSession,
    PppSessionBrief,
    PppSessionPackets,
    humanize_bytes,
    humanize_duration,
    is_not_running_error,
    is_permission_error,
    parse_clear,
    parse_clear_result,
    parse_session_all,
    parse_session_all_report,
    parse_session_brief,
    parse_session_packets,
)

SAMPLE_FILES = sample_files("derived/npppctl/*.txt", "derived2/npppctl/*.txt")
ALL_PPPX = (SAMPLES / "derived/npppctl/session-all-2-sessions-pppx.txt").read_text()
ALL_PPPAC = (SAMPLES / "derived/npppctl/session-all-1-session-pppac.txt").read_text()

ALICE = PppSession(
    ppp_id=0, username="alice", realm="LOCAL", interface="pppx0", assigned_ipv4="10.0.0.2",
    mru=1400, tunnel_protocol="L2TP", tunnel_from="203.0.113.10:1701",
    peer_host="203.0.113.10", peer_port=1701, start_time="2024/05/01 12:00:00",
    elapsed_s=3725, bytes_in=123456, packets_in=1532, errors_in=0, bytes_out=987654,
    packets_out=1210, errors_out=0)
BOB = PppSession(
    ppp_id=1, username="bob", realm="LOCAL", interface="pppx1", assigned_ipv4="10.0.0.3",
    mru=1400, tunnel_protocol="L2TP", tunnel_from="198.51.100.7:54321",
    peer_host="198.51.100.7", peer_port=54321, start_time="2024/05/01 13:01:50",
    elapsed_s=42, bytes_in=512, packets_in=7, errors_in=0, bytes_out=0, packets_out=0,
    errors_out=0)
CAROL = PppSession(
    ppp_id=5, username="carol", realm="LOCAL", interface="pppac0", assigned_ipv4="10.0.0.4",
    mru=1360, tunnel_protocol="L2TP", tunnel_from="192.0.2.33:1701", peer_host="192.0.2.33",
    peer_port=1701, start_time="2024/05/01 14:10:00", elapsed_s=7260,
    bytes_in=5368709120, packets_in=4000000, errors_in=12, bytes_out=1048576000,
    packets_out=3000000, errors_out=0)

EXPECTED = {
    "derived/npppctl/clear-2-sessions.txt": (parse_clear_result, NpppClear(2, 0)),
    "derived/npppctl/clear-no-session.txt": (parse_clear_result, NpppClear(0, 0)),
    "derived/npppctl/session-all-1-session-pppac.txt": (parse_session_all, (CAROL,)),
    "derived/npppctl/session-all-2-sessions-pppx.txt": (parse_session_all, (ALICE, BOB)),
    "derived/npppctl/session-brief-2-sessions.txt": (parse_session_brief, (
        PppSessionBrief(0, "10.0.0.2", "alice", "L2TP", "203.0.113.10:1701",
                        "203.0.113.10", 1701),
        PppSessionBrief(1, "10.0.0.3", "bob", "L2TP", "198.51.100.7:54321",
                        "198.51.100.7", 54321))),
    "derived/npppctl/session-brief-empty.txt": (parse_session_brief, ()),
    "derived/npppctl/session-packets-2-sessions.txt": (parse_session_packets, (
        PppSessionPackets(0, "alice", 120.6, 1532, 0, 964.5, 1210, 0),
        PppSessionPackets(1, "bob", 0.5, 7, 0, 0.0, 0, 0))),
    # derived2/: an IPv6 peer printed `host:port` unbracketed, a 66-character username
    # with blanks and a colon, an empty realm, 50 hours, 1048575999 bytes shown as
    # "1000.0 MB" (GB starts at 1000 * 1024 * 1024), errors in % of packets + errors.
    "derived2/npppctl/derived-session-all-ipv6-longuser-utf8-space.txt": (parse_session_all, (
        PppSession(
            ppp_id=3, username="Jean-Baptiste de la Fontaine-Rochefoucauld: field engineer, "
            "site 12", realm="", interface="pppx0", assigned_ipv4="10.0.0.2", mru=1360,
            tunnel_protocol="L2TP", tunnel_from="2001:db8:100::7:1701",
            peer_host="2001:db8:100::7", peer_port=1701, start_time="2026/01/30 08:00:05",
            elapsed_s=180023, bytes_in=5368709120, packets_in=4100000, errors_in=7,
            bytes_out=1048575999, packets_out=3900000, errors_out=0),
        PppSession(
            ppp_id=4, username="m\u00fcller", realm="LOCAL", interface="pppx1",
            assigned_ipv4="10.0.0.3", mru=1400, tunnel_protocol="L2TP",
            tunnel_from="198.51.100.7:61234", peer_host="198.51.100.7", peer_port=61234,
            start_time="2026/02/01 09:59:17", elapsed_s=42, bytes_in=999, packets_in=12,
            errors_in=0, bytes_out=1000, packets_out=13, errors_out=1),
        PppSession(
            ppp_id=7, username="Jean Dupont", realm="LOCAL", interface="pppx2",
            assigned_ipv4="10.0.0.4", mru=1400, tunnel_protocol="L2TP",
            tunnel_from="192.0.2.44:1701", peer_host="192.0.2.44", peer_port=1701,
            start_time="2026/02/01 09:00:00", elapsed_s=3600, bytes_in=1024000,
            packets_in=900, errors_in=0, bytes_out=0, packets_out=0, errors_out=0))),
    # PPPoE on pppac0: the peer is an AF_LINK address, `%02x:...` and no port.
    "derived2/npppctl/derived-session-all-pppoe-pppac.txt": (parse_session_all, (
        PppSession(
            ppp_id=1, username="bob", realm="LOCAL", interface="pppac0",
            assigned_ipv4="10.0.0.9", mru=1492, tunnel_protocol="PPPoE",
            tunnel_from="00:0d:b9:12:34:56", peer_host="00:0d:b9:12:34:56", peer_port=None,
            start_time="2026/02/01 07:00:00", elapsed_s=7260, bytes_in=2000000,
            packets_in=3000, errors_in=0, bytes_out=2500000, packets_out=3100,
            errors_out=0),)),
    # A username with a blank in the %-20s column, and one in UTF-8 (7 bytes, 6 letters).
    "derived2/npppctl/derived-session-brief-user-with-blank.txt": (parse_session_brief, (
        PppSessionBrief(7, "10.0.0.4", "Jean Dupont", "L2TP", "192.0.2.44:1701",
                        "192.0.2.44", 1701),
        PppSessionBrief(4, "10.0.0.3", "m\u00fcller", "L2TP", "198.51.100.7:61234",
                        "198.51.100.7", 61234))),
}


def test_every_sample_has_expectations():
    assert SAMPLE_FILES, f"no samples under {SAMPLES}"
    assert {sample_id(p) for p in SAMPLE_FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=sample_id)
def test_sample(path):
    parse, expected = EXPECTED[sample_id(path)]
    assert parse(path.read_text()) == expected


def test_sample_report_has_no_unknown_lines():
    assert parse_session_all_report(ALL_PPPX).unknown_lines == 0
    assert parse_clear((SAMPLES / "derived/npppctl/clear-2-sessions.txt").read_text()) == 2


def test_no_session_is_empty_output():
    empty = (SAMPLES / "derived/npppctl/session-brief-empty.txt").read_text()
    assert parse_session_all(empty) == ()
    assert parse_session_packets(empty) == ()


# Variants of session all that npppctl.c prints -------------------------------

def _entry(text: str, label: str, value: str) -> str:
    """The text with the value of every `label` line replaced."""
    lines = []
    for line in text.splitlines():
        if line.strip().startswith(f"{label} ") and ":" in line:
            line = line[:line.index(":") + 2] + value
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_trailing_blank_of_elapsed_time_may_be_stripped():
    assert "42 sec \n" in ALL_PPPX
    assert parse_session_all(ALL_PPPX.replace("42 sec \n", "42 sec\n")) == (ALICE, BOB)


def test_filtered_output_starts_with_the_blank_line():
    # `session all username bob`: fprint_who_all(n, ...) with n counting
    # every session, so the one printed entry gets the separating newline.
    bob_only = ALL_PPPX[ALL_PPPX.index("\nPpp Id = 1"):]
    assert bob_only.startswith("\n")
    assert parse_session_all(bob_only) == (BOB,)


def test_old_npppctl_without_mru():
    old = "".join(line for line in ALL_PPPAC.splitlines(True) if "MRU" not in line)
    (session,) = parse_session_all(old)
    assert session.mru is None
    assert session.bytes_in == CAROL.bytes_in


@pytest.mark.parametrize("protocol, tunnel_from, host, port", [
    ("L2TP", "2001:db8::1:1701", "2001:db8::1", 1701),           # IPv6, no brackets
    ("L2TP", "client.example.net:1701", "client.example.net", 1701),   # without -n
    ("PPTP", "192.0.2.9:1723", "192.0.2.9", 1723),
    ("PPPoE", "aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff", None),   # AF_LINK: a MAC, no port
])
def test_tunnel_from(protocol, tunnel_from, host, port):
    text = _entry(_entry(ALL_PPPAC, "Tunnel Protocol", protocol), "Tunnel From", tunnel_from)
    (session,) = parse_session_all(text)
    assert (session.tunnel_protocol, session.tunnel_from, session.peer_host,
            session.peer_port) == (protocol, tunnel_from, host, port)


def test_empty_username_and_realm_are_printed_empty():
    text = _entry(_entry(ALL_PPPAC, "Username", ""), "Realm Name", "")
    (session,) = parse_session_all(text)
    assert (session.username, session.realm) == ("", "")


def test_unknown_extra_label_is_counted():
    text = ALL_PPPAC.replace("          MRU ",
                             "          Idle Timer              : 300\n          MRU ")
    report = parse_session_all_report(text)
    assert report.sessions == (CAROL,)
    assert report.unknown_lines == 1


@pytest.mark.parametrize("label, value, words", [
    ("Input Packets", "4000x00", "expected a number"),
    ("Input Packets", "-1", "expected a number"),
    ("MRU", "", "expected a number"),
    ("Input Bytes", "5368709120 (5.0 MB)", "does not match"),
    ("Input Bytes", "536870912 (5.0 GB)", "does not match"),
    ("Output Bytes", "999 (1.0 KB)", "does not match"),
    ("Output Bytes", "1048576000", "does not match"),
    ("Input Errors", "12", "expected `N (x.y%)`"),
    ("Elapsed Time", "7260 sec (2 hours)", "expected `N sec"),
    ("Elapsed Time", "7260", "expected `N sec"),
    ("Assigned IPv4 Address", "10.0.0.256", "not an IPv4 address"),
    ("Start Time", "2024-05-01 14:10:00", "YYYY/MM/DD"),
    ("Tunnel Protocol", "GRE", "unknown tunnel protocol"),
    ("Tunnel From", "192.0.2.33", "printed `host:port`"),
    ("Concentrated Interface", "", "empty Concentrated Interface"),
    ("Ppp Id", "6", "`Ppp Id = 5` but Ppp Id 6"),
])
def test_bad_value_names_its_line(label, value, words):
    text = _entry(ALL_PPPAC, label, value)
    with pytest.raises(ParseError) as e:
        parse_session_all(text, "npppctl -n session all")
    assert e.value.command == "npppctl -n session all"
    assert words in e.value.reason
    assert e.value.lineno is not None


def test_renamed_label_is_missing_field():
    text = ALL_PPPX.replace("Username                :", "User Name               :")
    with pytest.raises(ParseError) as e:
        parse_session_all(text)
    assert "lacks Username" in e.value.reason
    assert e.value.lineno == 1


def test_truncated_output():
    cut = "".join(ALL_PPPX.splitlines(True)[:26])
    with pytest.raises(ParseError) as e:
        parse_session_all(cut)
    assert "lacks" in e.value.reason and "Output Errors" in e.value.reason
    assert e.value.lineno == 19


@pytest.mark.parametrize("text", [
    "npppctl: connect: Permission denied\n",        # stderr text in stdout
    "hello\n",
    "          Ppp Id                  : 0\n",     # a label before any `Ppp Id = N`
    "Ppp Id = x\n",
    ALL_PPPX.replace("Username                : alice", "Username                : alice",
                     1).replace("          Realm Name", "Realm Name", 1),
])
def test_garbage_raises(text):
    with pytest.raises(ParseError):
        parse_session_all(text)


def test_duplicate_label_raises():
    text = ALL_PPPAC.replace("          MRU ", "          Username                : eve\n"
                                              "          MRU ")
    with pytest.raises(ParseError) as e:
        parse_session_all(text)
    assert "twice" in e.value.reason


def test_humanizers_follow_npppctl_c():
    assert humanize_duration(42) == ""
    assert humanize_duration(60) == "(1 minute)"
    assert humanize_duration(7200) == "(2 hours)"
    assert humanize_duration(3725) == "(1 hour and 2 minutes)"
    assert humanize_bytes(999) is None
    assert humanize_bytes(1000) == (1000 / 1024, "KB")
    assert humanize_bytes(1000 * 1024 - 1)[1] == "KB"
    assert humanize_bytes(1000 * 1024)[1] == "MB"
    value, unit = humanize_bytes(1048576000)           # FORMATS.md: `1048576000 (1.0 GB)`
    assert (f"{value:.1f}", unit) == ("1.0", "GB")


# brief / packets / clear ---------------------------------------------------------

BRIEF_HEAD = ("Ppp Id     Assigned IPv4   Username             Proto Tunnel From\n"
              "---------- --------------- -------------------- ----- -------------------------\n")
PACKETS_HEAD = ("Ppd Id     Username             In(Kbytes/pkts/errs)    Out(Kbytes/pkts/errs)\n"
                "---------- -------------------- ----------------------- "
                "-----------------------\n")


def test_brief_long_username_and_empty_username():
    # "%10u %-15s %-20s %-5s %s": a 26-character name pushes Proto and peer right.
    long_name = "firstname.lastname.sales1"
    rows = (f"{7:10d} {'10.0.0.9':<15s} {long_name:<20s} {'L2TP':<5s} 2001:db8::7:1701\n"
            f"{8:10d} {'10.0.0.10':<15s} {'':<20s} {'PPPoE':<5s} aa:bb:cc:dd:ee:ff\n")
    assert parse_session_brief(BRIEF_HEAD + rows) == (
        PppSessionBrief(7, "10.0.0.9", long_name, "L2TP", "2001:db8::7:1701", "2001:db8::7",
                        1701),
        PppSessionBrief(8, "10.0.0.10", "", "PPPoE", "aa:bb:cc:dd:ee:ff",
                        "aa:bb:cc:dd:ee:ff", None))


@pytest.mark.parametrize("text", [
    BRIEF_HEAD.replace("Username", "User"),
    BRIEF_HEAD.splitlines(True)[0],                                  # truncated after header
    BRIEF_HEAD + "         x 10.0.0.2        alice                L2TP  203.0.113.10:1701\n",
    BRIEF_HEAD + "         0 10.0.0.2        alice                GRE   203.0.113.10:1701\n",
    BRIEF_HEAD + "         0 10.0.0          alice                L2TP  203.0.113.10:1701\n",
    BRIEF_HEAD + "         0 10.0.0.2        alice                L2TP  203.0.113.10\n",
    BRIEF_HEAD + "npppctl: connect: No such file or directory\n",
])
def test_brief_refuses(text):
    with pytest.raises(ParseError):
        parse_session_brief(text)


def test_packets_long_username_and_fixed_typo():
    long_name = "firstname.lastname.sales1"
    row = "%10u %-20s %9.1f %7u %5u %9.1f %7u %5u\n" % (3, long_name, 1.5, 12, 1, 2048.0, 9, 0)
    expected = (PppSessionPackets(3, long_name, 1.5, 12, 1, 2048.0, 9, 0),)
    assert parse_session_packets(PACKETS_HEAD + row) == expected
    assert parse_session_packets(PACKETS_HEAD.replace("Ppd", "Ppp") + row) == expected


@pytest.mark.parametrize("row", [
    "         0 alice                    120.6    1532     0     964.5    1210\n",   # truncated
    "         0 alice                    120.6    15x2     0     964.5    1210     0\n",
    "         0 alice                      120    1532     0     964.5    1210     0\n",
])
def test_packets_refuses(row):
    with pytest.raises(ParseError) as e:
        parse_session_packets(PACKETS_HEAD + row)
    assert e.value.lineno == 3


@pytest.mark.parametrize("text, expected", [
    ("Successfully disconnected 1 session.\n", NpppClear(1, 0)),
    ("Successfully disconnected 3 sessions.\nFailed to disconnect 1 session.\n",
     NpppClear(3, 1)),
    ("Failed to disconnect 2 sessions.\n", NpppClear(0, 2)),
])
def test_clear_variants(text, expected):
    assert parse_clear_result(text) == expected
    assert parse_clear(text) == expected.disconnected


@pytest.mark.parametrize("text", [
    "", "Disconnected 2 sessions.\n", "Successfully disconnected two sessions.\n",
    "npppctl: connect: Connection refused\n"])
def test_clear_refuses(text):
    with pytest.raises(ParseError):
        parse_clear(text)


@pytest.mark.parametrize("stderr, not_running, permission", [
    ("npppctl: connect: No such file or directory\n", True, False),
    ("npppctl: connect: Connection refused\n", True, False),
    ("npppctl: connect: Permission denied\n", False, True),
    ("npppctl: command was fail\n", False, False),
    ("", False, False),
])
def test_stderr_classifiers(stderr, not_running, permission):
    assert is_not_running_error(stderr) is not_running
    assert is_permission_error(stderr) is permission
