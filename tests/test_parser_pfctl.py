"""Tests of parsers/pfctl.py against real pfctl outputs and the printf formats.

Samples: tests/fixtures/openbsd-samples (see its SOURCES.md).  Fixtures:
tests/fixtures/pfctl (see tests/fixtures/SOURCES.md).  Extra lines built in
here follow the printf formats named next to them (sbin/pfctl/pfctl_parser.c
rev 1.352 print_status()/print_rule(), sbin/pfctl/pfctl.c rev 1.397).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SAMPLES, sample_files
from obsdvpn_agent.checks.pfdiff import rulesets_equal
from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.pfctl import (
    UNLIMITED,
    PfInfo,
    PfLimits,
    normalize_rule,
    parse_info,
    parse_interfaces,
    parse_limits,
    parse_rule_tree,
    parse_rules,
    parse_skip,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pfctl"

SI_FILES = sample_files("derived/pfctl/si-*.txt")
RULE_FILES = sample_files(*(f"pfctl/{d}/*.txt" for d in ("regress-nv", "regress-loaded",
                                                          "regress-sr", "real")))


def read(path: Path) -> str:
    return path.read_text()


def test_the_samples_are_there():
    # A missing sample folder must fail loudly, not collect zero tests.
    assert len(SI_FILES) >= 3
    assert len(RULE_FILES) >= 12


# ---------------------------------------------------------------------------
# pfctl -si

PFRES_NAMES_7X = ("match", "bad-offset", "fragment", "short", "normalize", "memory",
                  "bad-timestamp", "congestion", "ip-option", "proto-cksum",
                  "state-mismatch", "state-insert", "state-limit", "src-limit",
                  "synproxy", "translate", "no-route")

SI_EXPECTED = {
    "si-enabled-7x.txt": {"enabled": True, "status_for_s": 3723, "states_current": 37,
                              "searches": 1234567, "inserts": 8910, "removals": 8873,
                              "match": 9876, "short": 3, "state_mismatch": 2},
    "si-disabled-7x.txt": {"enabled": False, "status_for_s": 12 * 86400 + 3 * 3600 + 4 * 60 + 5,
                               "states_current": 0, "searches": 120034, "inserts": 412,
                               "removals": 412, "match": 530, "short": 0, "state_mismatch": 0},
    "si-disabled-zero-runtime-7x.txt": {"enabled": False, "status_for_s": None,
                                            "states_current": 37, "searches": 1234567,
                                            "inserts": 8910, "removals": 8873, "match": 9876,
                                            "short": 3, "state_mismatch": 2},
}


@pytest.mark.parametrize("path", SI_FILES, ids=lambda p: p.name)
def test_parse_info_samples(path):
    info = parse_info(read(path))
    assert info.debug == "err"
    assert info.states_half_open == 0
    assert tuple(name for name, _ in info.counters) == PFRES_NAMES_7X
    assert tuple(name for name, _ in info.state_counters) == ("searches", "inserts", "removals")
    assert info.unknown_lines == 0
    want = SI_EXPECTED.get(path.name)
    if want is None:                # a new sample: at least the invariants above
        return
    assert info.enabled is want["enabled"]
    assert info.status_for_s == want["status_for_s"]
    assert info.states_current == want["states_current"]
    assert info.state_counter("searches") == want["searches"]
    assert info.counter("searches") == want["searches"]
    assert info.state_counter("inserts") == want["inserts"]
    assert info.state_counter("removals") == want["removals"]
    assert info.counter("match") == want["match"]
    assert info.counter("short") == want["short"]
    assert info.counter("state-mismatch") == want["state_mismatch"]
    assert info.counter("no-such-counter") is None


# ---------------------------------------------------------------------------
# derived2/pfctl: newer releases and edge cases (derived2/SOURCES.md), each with its
# parser and the exact result, or the ParseError it must raise.

DERIVED2_PFCTL_FILES = sample_files("derived2/pfctl/*.txt")
FREEBSD_PFRES_NAMES = PFRES_NAMES_7X[:15]        # FreeBSD 12: up to synproxy


def _counters(names: tuple[str, ...], **nonzero: int) -> tuple[tuple[str, int], ...]:
    return tuple((name, nonzero.get(name.replace("-", "_"), 0)) for name in names)


TELEGRAF_FREEBSD = PfInfo(
    enabled=True, status_for_s=161 * 86400 + 21 * 3600 + 24 * 60 + 45, debug="Urgent",
    states_current=649, states_half_open=None,
    state_counters=(("searches", 18421725761), ("inserts", 156762508),
                    ("removals", 156761859)),
    counters=_counters(FREEBSD_PFRES_NAMES, match=473002784, fragment=2729, short=107,
                       normalize=1685, memory=101, ip_option=152301, proto_cksum=108,
                       state_mismatch=24393, state_insert=92))

DERIVED2_PFCTL_EXPECTED = {
    # `set loginterface` block skipped; 97000 states of a 100000 limit.
    "derived-si-loginterface-7x-near-limit.txt": (parse_info, PfInfo(
        enabled=True, status_for_s=42 * 60 + 17, debug="err", states_current=97000,
        states_half_open=0,
        state_counters=(("searches", 5000000), ("inserts", 120000), ("removals", 23000)),
        counters=_counters(PFRES_NAMES_7X, match=120500))),
    "derived-sm-7x.txt": (parse_limits, PfLimits(limits=(
        ("states", 100000), ("src-nodes", 10000), ("frags", 65536), ("tables", 1000),
        ("table-entries", 200000), ("pktdelay-pkts", 10000), ("anchors", 512)))),
    "derived-sm-states-unlimited.txt": (parse_limits, PfLimits(limits=(
        ("states", UNLIMITED), ("src-nodes", 10000), ("frags", 65536), ("tables", 1000),
        ("table-entries", 200000), ("pktdelay-pkts", 10000), ("anchors", 512)))),
    # -v: Hostid, Checksum, Source Tracking Table, Limit Counters and the adaptive
    # syncookies watermarks are tolerated, not read.
    "derived-vsi-7x-verbose.txt": (parse_info, PfInfo(
        enabled=True, status_for_s=3 * 86400 + 4 * 3600 + 5 * 60 + 6, debug="err",
        states_current=1284, states_half_open=3,
        state_counters=(("searches", 98765432), ("inserts", 234567), ("removals", 233283)),
        counters=_counters(PFRES_NAMES_7X, match=345678, fragment=12, short=3,
                           proto_cksum=1, state_mismatch=57))),
    # FreeBSD 12.2, cut after proto-cksum by the issue it was posted in: no half-open line,
    # the old `Urgent` debug name.
    "monitorix297-s-info-head.txt": (parse_info, PfInfo(
        enabled=True, status_for_s=5 * 86400 + 13 * 3600 + 9 * 60 + 50, debug="Urgent",
        states_current=920, states_half_open=None,
        state_counters=(("searches", 65233309), ("inserts", 576460), ("removals", 575540)),
        counters=_counters(PFRES_NAMES_7X[:10], match=942134, ip_option=951))),
    # telegraf's own format-change fixture: a renamed `current entries` must raise, never
    # read as zero states.
    "telegraf-fixture-current-entrys.txt": (parse_info, ParseError),
    "telegraf-freebsd-s-info-loginterface.txt": (parse_info, TELEGRAF_FREEBSD),
}


def test_every_derived2_pfctl_sample_has_expectations():
    assert {p.name for p in DERIVED2_PFCTL_FILES} == set(DERIVED2_PFCTL_EXPECTED)


@pytest.mark.parametrize("path", DERIVED2_PFCTL_FILES, ids=lambda p: p.name)
def test_derived2_pfctl_sample(path):
    parse, expected = DERIVED2_PFCTL_EXPECTED[path.name]
    if expected is ParseError:
        with pytest.raises(ParseError) as err:
            parse(read(path))
        assert "current entries" in err.value.reason
        return
    assert parse(read(path)) == expected


ENABLED = SAMPLES / "derived" / "pfctl" / "si-enabled-7x.txt"


def _row(name: str, value: int, rate: str = "0.0") -> str:
    # print_status(): "  %-25s %14llu " then "%14.1f/s"
    return "  %-25s %14u " % (name, value) + "%14s/s" % rate


def test_parse_info_verbose_sections_are_tolerated():
    lines = read(ENABLED).splitlines()
    state_end = lines.index("Counters")
    verbose = (
        lines[:2]
        # -v: "Hostid:   0x%08x", "Checksum: 0x%s" and an empty line.
        + ["Hostid:   0x1a2b3c4d", "Checksum: 0x" + "0123456789abcdef" * 2, ""]
        # set loginterface: "Interface Stats for %-16s %5s %16s" and its rows.
        + ["Interface Stats for %-16s %5s %16s" % ("vio0", "IPv4", "IPv6"),
           "  %-25s %14u %16u" % ("Bytes In", 123456, 0),
           "  %-25s %14u %16u" % ("Bytes Out", 654321, 0),
           "  Packets In", "    %-23s %14u %16u" % ("Passed", 10, 0),
           "    %-23s %14u %16u" % ("Blocked", 2, 0),
           "  Packets Out", "    %-23s %14u %16u" % ("Passed", 11, 0),
           "    %-23s %14u %16u" % ("Blocked", 0, 0), ""]
        + lines[2:state_end]
        + ["Source Tracking Table", "  %-25s %14u %14s" % ("current entries", 5, ""),
           _row("searches", 10), _row("inserts", 5), _row("removals", 0),
           "Fragments", "  %-25s %14u %14s" % ("current entries", 0, ""),
           _row("searches", 0), _row("inserts", 0), _row("removals", 0)]
        + lines[state_end:]
        + ["Limit Counters", _row("max states per rule", 0), _row("max-src-states", 0),
           "Adaptive Syncookies Watermarks",
           "  %-25s %14d states" % ("start", 25000), "  %-25s %14d states" % ("end", 12500)]
    )
    info = parse_info("\n".join(verbose) + "\n")
    assert info.states_current == 37          # not the Source Tracking / Fragments rows
    assert info.state_counter("searches") == 1234567
    assert info.counter("match") == 9876
    assert len(info.counters) == 17
    assert info.unknown_lines == 0


def test_parse_info_without_half_open_line_of_older_releases():
    text = "\n".join(line for line in read(ENABLED).splitlines() if "half-open" not in line)
    info = parse_info(text)
    assert info.states_half_open is None
    assert info.states_current == 37


def test_parse_info_old_debug_names_and_unknown_section():
    text = read(ENABLED).replace("Debug: err", "Debug: Urgent")
    text += "New Section\n" + _row("something", 4) + "\n"
    info = parse_info(text)
    assert info.debug == "Urgent"
    assert info.unknown_lines == 2


@pytest.mark.parametrize("mutate, reason", [
    (lambda t: t.replace("Status:", "State:"), "Status"),
    (lambda t: t.replace("current entries", "current entires"), "current entries"),
    (lambda t: t.replace("searches", "lookups"), "searches"),
    (lambda t: t.replace("Counters", "Counter"), "Counters"),
    (lambda t: t.replace("State Table", "States"), "State Table"),
    (lambda t: t.replace("  match ", "  matched "), "match"),
    (lambda t: t.replace("    37 ", "    3x7 ", 1), "number"),
    (lambda t: t.replace("1234567", "12345-67"), "number"),
    (lambda t: t.split("Counters")[0], "Counters"),              # truncated
    (lambda t: "\n".join(t.splitlines()[:5]), "Counters"),       # truncated
    (lambda t: t + "Counters\n", "twice"),
    (lambda t: t + _row("match", 1) + "\n", "twice"),
    (lambda t: "", "empty"),
    (lambda t: "pfctl: /dev/pf: Permission denied\n", "error"),
    (lambda t: "pfctl: /dev/pf: Permission denied\n" + t, "error"),
    (lambda t: "<html><body>502 Bad Gateway</body></html>\n", "Status"),
    (lambda t: "\x00\x01\x02garbage\n", "control"),
])
def test_parse_info_rejects(mutate, reason):
    with pytest.raises(ParseError) as e:
        parse_info(mutate(read(ENABLED)))
    assert e.value.command == "pfctl -si"
    assert reason.lower() in str(e.value).lower()


# ---------------------------------------------------------------------------
# pfctl -sm

SM_DEFAULT = FIXTURES / "sm-default.txt"


def test_parse_limits_default():
    limits = parse_limits(read(SM_DEFAULT))
    assert limits.states_hard_limit == 100000
    assert limits.get("src-nodes") == 10000
    assert limits.get("frags") == 65536
    assert limits.get("tables") == 1000
    assert limits.get("table-entries") == 200000
    assert limits.get("pktdelay-pkts") == 10000
    assert limits.get("anchors") == 512
    assert limits.get("nosuch") is None
    assert [n for n, _ in limits.limits] == ["states", "src-nodes", "frags", "tables",
                                             "table-entries", "pktdelay-pkts", "anchors"]
    assert limits.unknown_lines == 0


def test_parse_limits_unlimited_and_unknown_line():
    # pfctl_show_limits(): "%-13s " then "unlimited\n" when the limit is UINT_MAX.
    text = read(SM_DEFAULT).replace("%-13s hard limit %8u" % ("frags", 65536),
                                    "%-13s unlimited" % "frags")
    limits = parse_limits(text + "a line of a later release\n")
    assert limits.get("frags") == UNLIMITED
    assert limits.states_hard_limit == 100000
    assert limits.unknown_lines == 1


def test_states_hard_limit_without_states_raises():
    with pytest.raises(ParseError):
        _ = PfLimits(limits=(("frags", 1),)).states_hard_limit


@pytest.mark.parametrize("mutate, reason", [
    (lambda t: t.replace("  100000", "  10x000"), "bad limit"),
    (lambda t: t.replace("states  ", "state   "), "states"),
    (lambda t: "\n".join(t.splitlines()[1:]), "states"),          # truncated head
    (lambda t: t.replace("hard limit   100000", "hard limit"), "bad limit"),  # cut
    (lambda t: t + t.splitlines()[0] + "\n", "twice"),
    (lambda t: "", "states"),
    (lambda t: "pfctl: /dev/pf: Permission denied\n", "error"),
    (lambda t: "total 0\n-rw-r--r-- 1 root wheel 0 pf.conf\n", "states"),
])
def test_parse_limits_rejects(mutate, reason):
    with pytest.raises(ParseError) as e:
        parse_limits(mutate(read(SM_DEFAULT)))
    assert e.value.command == "pfctl -sm"
    assert reason in str(e.value)


# ---------------------------------------------------------------------------
# pfctl -sr / -gvvsr / -nvf: every sample


def _rule_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("[") and line.strip() != "}"
            and line.split()[0] in ("pass", "block", "match", "anchor")
            or line.startswith("@")]


RULE_COUNTS = {
    "oams63-sr.txt": 7, "pf1.loaded.txt": 8, "pf69.loaded.txt": 2, "pf101.ok.txt": 4,
    "pf13.ok.txt": 16, "pf15.ok.txt": 9, "pf2.ok.txt": 22, "pf4.ok.txt": 62,
    "pf48.ok.txt": 14, "pf87.ok.txt": 22, "pf112.ok.txt": 3, "changerule-head.ok.txt": 6,
}


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_parse_rules_every_sample(path):
    text = read(path)
    rs = parse_rules(text)
    lines = _rule_lines(text)
    assert len(rs.rules) == len(lines) > 0
    assert rs.unknown_lines == 0
    for rule, line in zip(rs.rules, lines):
        assert rule.text == normalize_rule(line)
        assert normalize_rule(rule.text) == rule.text          # idempotent
        assert rule.action in ("pass", "block", "match", "anchor")
        assert "@" not in rule.text.split()[0]
    if path.name in RULE_COUNTS:
        assert len(rs.rules) == RULE_COUNTS[path.name]


def rules_of(name: str):
    (path,) = [p for p in RULE_FILES if p.name == name]
    return parse_rules(read(path))


def test_oams63_negated_interface_and_port_range():
    r = rules_of("oams63-sr.txt").rules
    assert (r[0].action, r[0].src, r[0].dst, r[0].text) == ("block", "any", "any", "block return all")
    assert r[1].text == "pass all flags S/SA"
    x11 = r[2]
    assert (x11.action, x11.direction, x11.interface, x11.interface_negated) == \
        ("block", "in", "lo0", True)
    assert (x11.proto, x11.dst, x11.dst_port) == ("tcp", "any", "6000:6010")
    assert r[3].log and r[3].direction == "out" and r[3].proto == "tcp"
    assert r[5].quick and r[5].proto == "icmp" and r[6].proto == "ipv6-icmp"


def test_pf1_loaded_numbers_info_lines_and_port_names():
    rs = rules_of("pf1.loaded.txt")
    assert [r.number for r in rs.rules] == list(range(8))
    assert all(len(r.info) == 3 and r.info[2].startswith("[ Evaluations:") for r in rs.rules)
    assert rs.rules[2].src_port == "<= 1024" and rs.rules[2].label == "foo_bar"
    assert rs.rules[3].dst_port == "25"                   # printed `port = smtp`
    assert rs.rules[3].text == "pass in proto tcp from any to any port = 25 flags S/SA"
    r4 = rs.rules[4]
    assert (r4.af, r4.src, r4.src_port, r4.dst, r4.dst_port) == \
        ("inet", "10.0.0.0/8", "> 1024", "! 10.1.2.3", "!= 22")


def test_pf69_loaded_tag_tagged_nat_to():
    m, p = rules_of("pf69.loaded.txt").rules
    assert (m.action, m.direction, m.interface, m.af, m.tag, m.nat_to) == \
        ("match", "out", "lo0", "inet", "regress", "127.0.0.1")
    assert (p.action, p.quick, p.tagged, p.nat_to) == ("pass", True, "regress", None)


def test_pf101_set_prio_and_numeric_ports():
    r = rules_of("pf101.ok.txt").rules
    assert r[0].text == "pass all flags S/SA set (prio 3)"
    assert r[1].text.endswith("set (prio(5, 2))") and r[1].dst_port == "22"
    assert (r[2].proto, r[2].dst, r[2].dst_port) == ("udp", "127.0.0.1", "53")


def test_pf13_enc0_and_inet6():
    r = rules_of("pf13.ok.txt").rules
    assert [x.interface for x in r[:3]] == ["enc0"] * 3
    assert [x.af for x in r[:3]] == [None, "inet", "inet6"]
    assert all(x.quick and x.direction == "in" for x in r[:3])
    assert r[9].src == "fec0::/64" and r[9].dst == "fec1::2"
    assert r[6].dst_port == "21" and "dup-to 192.168.1.1@tun1000001" in r[6].text


def test_pf15_options_esp_tos_tagged():
    rs = rules_of("pf15.ok.txt")
    # `set reassemble no ` has a trailing blank in the real output.
    assert rs.options == ("set reassemble yes no-df", "set reassemble no")
    esp = rs.rules[5]
    assert (esp.action, esp.direction, esp.proto) == ("match", "out", "esp")
    assert esp.text == "match out proto esp all set (tos 0x08)"
    assert rs.rules[0].text == "match all scrub (no-df)"
    assert rs.rules[8].tagged == "THROUGHPUT"


def test_pf2_block_variants_and_no_route():
    r = rules_of("pf2.ok.txt").rules
    assert r[4].text.startswith("block return-icmp(port-unr, port-unr) out log on tun1000000")
    assert r[4].log and r[4].proto == "udp"
    assert r[6].src == "! 157.161.48.183"
    assert r[12].src == "no-route"
    assert r[16].dst_port == "53" and r[18].dst_port == "22" and r[21].dst_port == "113"


def test_pf4_port_operators():
    r = rules_of("pf4.ok.txt").rules
    assert (r[10].src_port, r[10].dst_port) == ("22", "1024:2048")
    assert r[11].src_port == "21 >< 2048"
    assert r[12].src_port == "!= 1234"
    assert r[13].src_port == ">= 80"
    assert r[16].dst_port == "6669:65535"


def test_pf48_tables_nat_to_rdr_to():
    rs = rules_of("pf48.ok.txt")
    assert len(rs.tables) == 3
    assert rs.tables[0] == "table <regress> { 1.2.3.4 !5.6.7.8 10.0.0.0/8 ::1 fe80::1 127.0.0.1 }"
    r = rs.rules
    assert (r[0].src, r[0].dst, r[0].nat_to, r[0].af) == ("<regress.1>", "<regress.2>", "::1", "inet6")
    assert (r[1].interface, r[1].interface_negated, r[1].src, r[1].nat_to) == \
        ("lo0", True, "! <regress.1>", "127.0.0.1")
    assert (r[2].direction, r[2].rdr_to, r[2].nat_to) == ("in", "::1", None)


def test_pf87_service_names_become_numbers():
    r = rules_of("pf87.ok.txt").rules
    assert r[0].dst_port == "22" and r[1].src_port == "22"
    assert r[2].dst_port == "53" and r[4].dst_port == "80" and r[7].dst_port == "81"


def test_changerule_numeric_ports():
    r = rules_of("changerule-head.ok.txt").rules
    assert [x.dst_port for x in r] == ["50", "40", "30", "20", "10", None]


def test_pf112_anchor_depths():
    rs = rules_of("pf112.ok.txt")
    one, two, rule = rs.rules
    assert [x.depth for x in rs.rules] == [0, 1, 2]
    assert (one.action, one.anchor_path, one.path, one.expanded) == ("anchor", "one", "", True)
    assert (two.anchor_path, two.path, two.text) == ("one/two", "one", 'anchor "two" all')
    assert (rule.path, rule.src, rule.text) == ("one/two", "<foo>", "pass from <foo> to any flags S/SA")


# ---------------------------------------------------------------------------
# The VPN ruleset: -nvf vs -sr


def vpn(name: str):
    return parse_rules(read(FIXTURES / name), command="pfctl -nvf /etc/pf.conf"
                       if "nvf" in name else "pfctl -sr")


def _gvvsr(sr_text: str) -> str:
    # pfctl_show_rules() with -gvv: "@N " + rule, then pfctl_print_rule_counters().
    out = []
    for n, line in enumerate(sr_text.splitlines()):
        out += ["@%d %s" % (n, line),
                "  [ Skip steps: i=end r=end d=end ]",
                "  [ queue: qname=%s qid=%u pqname=%s pqid=%u ]" % ("", 0, "", 0),
                "  [ Evaluations: %-8u  Packets: %-8u  Bytes: %-10u  States: %-6u]"
                % (n * 10, n, n * 100, 0)]
    return "\n".join(out) + "\n"


def test_vpn_config_and_loaded_rules_are_equal():
    config, loaded = vpn("vpn-l2tp-nvf.txt"), vpn("vpn-l2tp-sr.txt")
    assert config.macros == (("ext_if", "vio0"), ("vpn_if", "pppx"))
    assert config.options == ("set optimization normal",)
    assert loaded.macros == () and loaded.options == ()
    assert len(config.rules) == len(loaded.rules) == 11
    assert rulesets_equal(loaded, config) == (True, ())


def test_vpn_gvvsr_equals_config():
    loaded = parse_rules(_gvvsr(read(FIXTURES / "vpn-l2tp-sr.txt")), command="pfctl -gvvsr")
    assert [r.number for r in loaded.rules] == list(range(11))
    assert loaded.rules[3].info[2].startswith("[ Evaluations: 30")
    assert rulesets_equal(loaded, vpn("vpn-l2tp-nvf.txt")) == (True, ())


def test_vpn_drift_is_named():
    equal, diffs = rulesets_equal(vpn("vpn-l2tp-sr-drifted.txt"), vpn("vpn-l2tp-nvf.txt"))
    assert not equal
    assert diffs == (
        "+ pass in on vio0 proto esp all",
        "- match out on vio0 inet from 10.0.1.0/24 to any set (prio(3, 4)) nat-to (vio0) round-robin",
        "+ match out on vio0 inet from 10.0.0.0/24 to any set (prio(3, 4)) nat-to (vio0) round-robin",
    )


def test_rule_order_matters():
    text = read(FIXTURES / "vpn-l2tp-sr.txt").splitlines()
    swapped = [text[1], text[0], *text[2:]]
    equal, diffs = rulesets_equal(parse_rules("\n".join(swapped)), vpn("vpn-l2tp-sr.txt"))
    assert not equal and len(diffs) == 2


def test_named_anchor_expanded_only_by_nvf_is_equal():
    # -nvf prints the inline rules of a named anchor (pfctl_load_ruleset()),
    # -sr only recurses into unnamed `_N` anchors (pfctl_show_rules()).
    config = parse_rules('pass all flags S/SA\nanchor "vpn" all {\n'
                         '  pass on enc0 all flags S/SA\n}\n', command="pfctl -nvf /etc/pf.conf")
    loaded = parse_rules('pass all flags S/SA\nanchor "vpn" all\n')
    assert config.rules[2].path == "vpn" and config.rules[2].depth == 1
    assert rulesets_equal(loaded, config) == (True, ())


def test_anchor_contents_compared_when_both_expand():
    text = read(SAMPLES / "pfctl" / "regress-sr" / "pf112.ok.txt")
    assert rulesets_equal(parse_rules(text), parse_rules(text)) == (True, ())
    changed = parse_rules(text.replace("<foo>", "<bar>"))
    equal, diffs = rulesets_equal(changed, parse_rules(text))
    assert not equal
    assert diffs == ("- [one/two] pass from <bar> to any flags S/SA",
                     "+ [one/two] pass from <foo> to any flags S/SA")


def test_unnamed_anchor_and_unknown_lines():
    text = ("anchor all {\n  pass in proto udp from any to any port = 500\n}\n"
            "a line of a later release\n")
    rs = parse_rules(text)
    assert rs.rules[0].anchor_path == "_1" and rs.rules[1].path == "_1"
    assert rs.unknown_lines == 1


def test_many_differences_are_capped():
    many = "\n".join("pass in proto tcp from any to any port = %d flags S/SA" % p
                     for p in range(1, 80))
    equal, diffs = rulesets_equal(parse_rules(many), parse_rules(""))
    assert not equal and len(diffs) == 50 and diffs[-1] == "... and 30 more differences"


def test_empty_ruleset():
    rs = parse_rules("")
    assert rs.rules == () and rs.unknown_lines == 0


# ---------------------------------------------------------------------------
# normalize_rule


@pytest.mark.parametrize("raw, canonical", [
    ("@3 pass all flags S/SA set ( prio 3 )", "pass all flags S/SA set (prio 3)"),
    ("pass out proto tcp all flags S/SA set ( prio(5, 2) )",
     "pass out proto tcp all flags S/SA set (prio(5, 2))"),
    ("pass in on vio0 proto udp from any to any port = isakmp",
     "pass in on vio0 proto udp from any to any port = 500"),
    ("pass in on vio0 proto udp from any to any port = ipsec-nat-t",
     "pass in on vio0 proto udp from any to any port = 4500"),
    ("pass on enc0 proto udp from any to any port = l2tp",
     "pass on enc0 proto udp from any to any port = 1701"),
    ("pass in proto tcp from any to any port != ssh flags S/SA",
     "pass in proto tcp from any to any port != 22 flags S/SA"),
    ("pass in proto tcp from any to any port = ircd flags S/SA",
     "pass in proto tcp from any to any port = ircd flags S/SA"),
    ("pass in from <__automatic_5f3e21ab_0> to any flags S/SA",
     "pass in from <__automatic_0> to any flags S/SA"),
    ("@1 pass in from <__automatic_5f3e21ab_1:4> to any flags S/SA",
     "pass in from <__automatic_1> to any flags S/SA"),
    ("@2 pass in from <vpn:3> to (vio0:2) flags S/SA",
     "pass in from <vpn> to (vio0) flags S/SA"),
    ("match out on egress from any to any nat-to (egress:0)",
     "match out on egress from any to any nat-to (egress:0)"),
    ('anchor "one" all {', 'anchor "one" all'),
    ("  pass   all   flags S/SA   ", "pass all flags S/SA"),
    ("@7 pass in all flags S/SA once # expired", "pass in all flags S/SA once"),
    ('pass all flags S/SA label "a  b (c)"', 'pass all flags S/SA label "a  b (c)"'),
])
def test_normalize_rule(raw, canonical):
    assert normalize_rule(raw) == canonical


# ---------------------------------------------------------------------------
# rules: what must raise


@pytest.mark.parametrize("text, reason", [
    ("pass in on\n", "unparseable"),
    ("pass in foo all\n", "unparseable"),
    ("pass in from any\n", "unparseable"),
    ("pass in from any to\n", "unparseable"),
    ("pass from 10.0.0.300 to any\n", "bad address"),
    ("pass in proto udp from any to any port = \n", "unparseable"),
    ("pass all set ( prio 3\n", "unbalanced"),
    ("pass all flags S/SA {\n}\n", "not an anchor"),
    ("@x pass all\n", "unparseable"),
    ("}\n", "without an open"),
    ('anchor "one" all {\n  anchor "two" all {\n    pass all\n  }\n', "not closed"),
    ("  [ Evaluations: 0  Packets: 0  Bytes: 0  States: 0     ]\npass all\n", "before any rule"),
    ("pfctl: /dev/pf: Permission denied\n", "error"),
    ("pass all flags S/SA\npfctl: DIOCGETRULE: Permission denied\n", "error"),
    ("/etc/pf.conf:12: syntax error\n", "error"),
    ("hello world\nthis is not pfctl\n", "not pfctl output"),
    ("\x89PNG\r\n\x1a\n", "control"),
])
def test_parse_rules_rejects(text, reason):
    with pytest.raises(ParseError) as e:
        parse_rules(text, command="pfctl -nvf /etc/pf.conf")
    assert e.value.command == "pfctl -nvf /etc/pf.conf"
    assert reason in str(e.value)


def test_truncated_real_anchor_output_raises():
    lines = read(SAMPLES / "pfctl" / "regress-sr" / "pf112.ok.txt").splitlines()
    with pytest.raises(ParseError):
        parse_rules("\n".join(lines[:-1]))


# ---------------------------------------------------------------------------
# pfctl -a '*' -sr: the rule tree

# openbsd/src regress/sbin/pfctl/pf112.ok (recent -current; the copy seen in a
# mislabeled mirror, see tests/fixtures/openbsd-samples/SOURCES.md): the real
# output of `pfctl -a 'regress/*' -sr` after loading nested inline anchors.
PF112_OK = ('anchor "one" all {\n'
            '  anchor "two" all {\n'
            '    pass from <foo> to any flags S/SA\n'
            '  }\n'
            '}\n')
PATH_FIXTURES = FIXTURES / "path"


def test_rule_tree_nests_the_real_pf112_output():
    tree = parse_rule_tree(PF112_OK)
    (one,) = tree.rules
    assert one.rule.anchor_name == "one" and one.children is not None
    (two,) = one.children
    assert two.rule.anchor_name == "two"
    (rule,) = two.children
    assert rule.rule.text == "pass from <foo> to any flags S/SA"
    assert rule.children is None and rule.rule.path == "one/two"


def test_rule_tree_of_a_plain_sr_leaves_named_anchors_unexpanded():
    tree = parse_rule_tree('block return all\nanchor "vpn" all\npass all flags S/SA\n',
                           "pfctl -sr")
    assert [n.rule.action for n in tree.rules] == ["block", "anchor", "pass"]
    assert tree.rules[1].children is None


def test_rule_tree_of_an_empty_expanded_anchor():
    tree = parse_rule_tree('anchor "ext" all {\n}\npass all flags S/SA\n')
    assert tree.rules[0].children == () and tree.rules[1].rule.depth == 0


@pytest.mark.parametrize("path", sorted(PATH_FIXTURES.glob("*.sr-recursive.txt")),
                         ids=lambda p: p.name)
def test_rule_tree_fixtures(path):
    text = path.read_text()
    tree = parse_rule_tree(text)

    def count(nodes) -> int:
        return sum(1 + count(n.children or ()) for n in nodes)

    lines = [line for line in text.splitlines() if line.strip() != "}"]
    assert count(tree.rules) == len(lines)


def test_rule_tree_keeps_the_options_the_engine_reads():
    tree = parse_rule_tree("pass in on rdomain 1 proto udp from any os \"Windows\" to any "
                           "port = 500 keep state (if-bound) route-to (em1 192.0.2.254)\n")
    rule = tree.rules[0].rule
    assert rule.on_rdomain == "1" and rule.os == '"Windows"'
    assert rule.options == ("keep", "state", "(if-bound)", "route-to", "(em1 192.0.2.254)")


@pytest.mark.parametrize("text,reason", [
    ('anchor "a" all {\n  pass all flags S/SA\n', "not closed"),
    ("pass all flags S/SA\n}\n", "without an open anchor"),
    ("pass all\nvio0 (skip)\n", "not rules"),
    ("pfctl: /dev/pf: Permission denied\n", "error instead"),
])
def test_rule_tree_rejects(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse_rule_tree(text)


# ---------------------------------------------------------------------------
# pfctl -sI -v


@pytest.mark.parametrize("path", sorted(PATH_FIXTURES.glob("*.sI-v.txt")),
                         ids=lambda p: p.name)
def test_parse_interfaces_fixtures(path):
    ifaces = parse_interfaces(path.read_text())
    assert ifaces.names[0] == "all" and list(ifaces.names) == sorted(ifaces.names)
    assert {"lo", "lo0"} <= set(ifaces.skipped)


def test_parse_interfaces_skip_marks():
    ifaces = parse_interfaces((PATH_FIXTURES / "healthy-skip.sI-v.txt").read_text())
    assert ifaces.skipped == ("enc0", "lo", "lo0", "pppx")
    assert "enc" in ifaces.names and "enc" not in ifaces.skipped


def test_parse_interfaces_ignores_the_vv_detail_lines():
    # print_iface() with -vv: TAB-indented Cleared/References/counter lines
    text = ("all\n\tCleared:     Sun Nov 29 12:00:00 2026\n"
            "\tReferences:  [ States:  0                  Rules: 1                  ]\n"
            "lo0 (skip)\n")
    assert parse_interfaces(text).names == ("all", "lo0")


@pytest.mark.parametrize("text,reason", [
    ("", "no interface"),
    ("all\nall\n", "printed twice"),
    ("all\nvio0 (skipped)\n", "NAME"),
    ("all\nthis-name-is-far-too-long0\n", "NAME"),
    ("pfctl: /dev/pf: Permission denied\n", "error instead"),
])
def test_parse_interfaces_rejects(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse_interfaces(text)


def test_parse_skip_reads_both_forms_pfctl_prints():
    assert parse_skip("set skip on { lo enc0 pppx }\npass all\nset skip on pflog0\n") == \
        ("lo", "enc0", "pppx", "pflog0")
    assert parse_skip("pass in on lo0 all\n# set skip on lo\n") == ()
