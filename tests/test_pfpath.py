"""Tests of checks/pfpath.py: pf's verdict for each packet a VPN client needs.

Rule lines follow print_rule() (sbin/pfctl/pfctl_parser.c rev 1.352) and the
`pfctl -a '*' -sr` layout of pfctl.c rev 1.397 pfctl_show_rules(); the
fixture cases are described in tests/fixtures/SOURCES.md ("pf path").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from obsdvpn_agent.checks.pfpath import (
    DEFAULT_PASS,
    PACKETS,
    EgressInterface,
    egress_interfaces,
    evaluate_path,
)
from obsdvpn_agent.parsers.ifconfig import parse_ifconfig
from obsdvpn_agent.parsers.pfctl import parse_interfaces, parse_rule_tree

PATH = Path(__file__).resolve().parent / "fixtures" / "pfctl" / "path"
EGRESS = EgressInterface("vio0", ("egress",), ("192.0.2.1",))
VPN = "10.0.0.0/24"


def verdicts(sr: str, skipped: frozenset[str] = frozenset(), ppp: str = "pppx",
             egress: EgressInterface | None = EGRESS) -> dict:
    return {v.packet: v for v in evaluate_path(parse_rule_tree(sr), skipped, egress, VPN, ppp)}


def decisions(sr: str, **kw) -> dict[str, str]:
    return {k: v.decision for k, v in verdicts(sr, **kw).items()}


ALL_PASS = dict.fromkeys(PACKETS, "pass")


def expect(**changed: str) -> dict[str, str]:
    return {**ALL_PASS, **{k.replace("_", "-"): v for k, v in changed.items()}}


NAT = "match out on egress inet from 10.0.0.0/24 to any nat-to (egress) round-robin\n"
VPN_PASSES = ("pass in on vio0 proto udp from any to any port = 500\n"
              "pass in on vio0 proto udp from any to any port = 4500\n"
              "pass in on vio0 proto esp all\n"
              "pass in on enc0 proto udp from any to any port = 1701\n"
              "pass in on pppx inet from 10.0.0.0/24 to any flags S/SA\n")


# --- the fixture cases: the six broken hosts of issue 11 and the healthy variants ---

CASES = {
    "healthy-default-deny": ALL_PASS,
    "healthy-skip": ALL_PASS,
    "healthy-anchor": ALL_PASS,
    "healthy-egress-ports": ALL_PASS,
    "healthy-stock-nat": ALL_PASS,
    "broken-block-in-all": expect(ike="block", nat_t="block", esp="block", l2tp="block",
                                  ppp_in="block"),
    "broken-block-esp-quick": expect(esp="block"),
    "broken-no-nat-t": expect(nat_t="block"),
    "broken-later-block": expect(ike="block", nat_t="block", esp="block"),
    "broken-no-pppx": expect(ppp_in="block"),
    "broken-no-nat": expect(nat_out="block"),
}


def fixture(name: str) -> tuple[str, frozenset[str]]:
    sr = (PATH / f"{name}.sr-recursive.txt").read_text()
    return sr, frozenset(parse_interfaces((PATH / f"{name}.sI-v.txt").read_text()).skipped)


def test_every_fixture_has_a_case():
    names = {p.name.split(".")[0] for p in PATH.glob("*.pf.conf")}
    assert names == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_cases(name):
    sr, skipped = fixture(name)
    got = verdicts(sr, skipped=skipped)
    assert {k: v.decision for k, v in got.items()} == CASES[name]
    for v in got.values():
        assert v.reason                     # every class says why


def test_broken_verdicts_name_the_deciding_rule():
    sr, skipped = fixture("broken-later-block")
    v = verdicts(sr, skipped=skipped)["ike"]
    assert v.rule == "block return in on vio0 all"
    assert "blocked by `block return in on vio0 all`" in v.reason
    sr, skipped = fixture("broken-block-esp-quick")
    assert verdicts(sr, skipped=skipped)["esp"].rule == "block drop in quick on vio0 proto esp all"
    sr, skipped = fixture("broken-no-nat")
    assert "no nat-to" in verdicts(sr, skipped=skipped)["nat-out"].reason


def test_skipped_interfaces_pass_unfiltered():
    sr, skipped = fixture("healthy-skip")
    v = verdicts(sr, skipped=skipped)
    assert v["l2tp"].rule == "" and "enc0 is skipped" in v["l2tp"].reason
    assert "skipped (set skip on pppx)" in v["ppp-in"].reason


def test_rules_in_an_anchor_are_named_with_it():
    sr, skipped = fixture("healthy-anchor")
    v = verdicts(sr, skipped=skipped)
    assert v["esp"].rule == 'pass in on egress proto esp all (in anchor "vpn")'
    assert v["ppp-in"].rule == ('pass inet from 10.0.0.0/24 to any flags S/SA '
                                '(in anchor "vpn/clients")')


# --- one test per pf semantic ---------------------------------------------------

def test_no_rule_passes_by_default():
    v = verdicts("match in all\n")
    assert {k: x.decision for k, x in v.items()} == expect(nat_out="block")
    assert v["ike"].rule == DEFAULT_PASS


def test_last_matching_rule_wins():
    sr = "pass all flags S/SA\nblock return in on vio0 proto udp all\n" + NAT
    assert decisions(sr) == expect(ike="block", nat_t="block")
    sr = "block return in on vio0 proto udp all\npass all flags S/SA\n" + NAT
    assert decisions(sr) == ALL_PASS


def test_quick_ends_evaluation():
    sr = ("pass in quick on vio0 proto udp from any to any port = 500\n"
          "block return all\n" + NAT)
    d = decisions(sr)
    assert d["ike"] == "pass" and d["nat-t"] == "block"


def test_match_rules_never_decide_but_their_nat_applies():
    assert decisions("block return all\nmatch in all\nmatch out all\n")["ike"] == "block"
    sr = "pass all flags S/SA\n" + NAT + "match out on egress all\n"
    assert decisions(sr)["nat-out"] == "pass"       # a later match without nat-to keeps it
    assert decisions("pass all flags S/SA\n")["nat-out"] == "block"


def test_nat_on_the_deciding_pass_rule():
    sr = ("block return all\npass in all flags S/SA\n"
          "pass out on egress inet from 10.0.0.0/24 to any flags S/SA nat-to (egress) "
          "round-robin\n")
    assert decisions(sr)["nat-out"] == "pass"
    # a nat-to on a pass rule that a later rule overrides does not apply
    sr += "pass out all flags S/SA\n"
    assert decisions(sr)["nat-out"] == "block"


def test_anchor_rules_are_evaluated_in_place_and_nest():
    sr = ('block return all\nanchor "a" all {\n  anchor "b" in on vio0 all {\n'
          '    pass in proto esp all\n  }\n}\n' + NAT)
    d = decisions(sr)
    assert d["esp"] == "pass" and d["ike"] == "block"


def test_anchor_criteria_gate_its_rules():
    sr = ('block return all\nanchor "a" out all {\n  pass proto esp all\n}\n' + NAT)
    assert decisions(sr)["esp"] == "block"


def test_quick_inside_an_anchor_ends_all_evaluation():
    sr = ('anchor "a" all {\n  pass in quick on vio0 proto esp all\n}\n'
          'block return all\n' + NAT)
    d = decisions(sr)
    assert d["esp"] == "pass" and d["ike"] == "block"


def test_a_quick_anchor_stops_after_a_rule_inside_matched():
    sr = ('anchor "a" quick all {\n  pass in on vio0 proto esp all\n}\n'
          'block return all\n' + NAT)
    d = decisions(sr)
    assert d["esp"] == "pass" and d["ike"] == "block"


def test_an_anchor_whose_rules_were_not_printed_is_unknown():
    # plain `pfctl -sr` prints a named anchor as `anchor "vpn" all` only
    v = verdicts('block return all\nanchor "vpn" all\n' + NAT)
    assert {k: x.decision for k, x in v.items()} == dict.fromkeys(PACKETS, "unknown")
    assert "pfctl -a '*' -sr" in v["ike"].reason


def test_direction():
    sr = "block return all\npass out proto esp all\n" + NAT
    assert decisions(sr)["esp"] == "block"
    sr = "block return all\npass proto esp all\n" + NAT
    assert decisions(sr)["esp"] == "pass"


@pytest.mark.parametrize("on,esp", [
    ("on vio0", "pass"), ("on egress", "pass"), ("on all", "pass"), ("on any", "pass"),
    ("on em0", "block"), ("on ! vio0", "block"), ("on ! lo0", "pass"), ("on enc", "block"),
])
def test_interfaces_and_groups(on, esp):
    sr = f"block return all\npass in {on} proto esp all\n" + NAT
    assert decisions(sr)["esp"] == esp


def test_enc0_is_in_group_enc_and_pppx_units_in_group_pppx():
    sr = ("block return all\npass in on enc proto udp all\n"
          "pass in on pppx all flags S/SA\n" + NAT)
    d = decisions(sr)
    assert d["l2tp"] == "pass" and d["ppp-in"] == "pass"


def test_one_pppx_unit_is_not_every_session():
    v = verdicts("block return all\npass in on pppx0 all flags S/SA\n" + NAT)
    assert v["ppp-in"].decision == "unknown"
    assert "one session's interface" in v["ppp-in"].reason


def test_pppac_interface_by_name():
    sr = "block return all\npass in on pppac0 all flags S/SA\n" + NAT
    assert decisions(sr, ppp="pppac0")["ppp-in"] == "pass"
    # whether pppac0 is in a group named pppac was not established: no guess
    sr = "block return all\npass in on pppac all flags S/SA\n" + NAT
    assert decisions(sr, ppp="pppac0")["ppp-in"] == "unknown"


@pytest.mark.parametrize("port,nat_t", [
    ("port = 4500", "pass"), ("port = ipsec-nat-t", "pass"), ("port = 500", "block"),
    ("port != 500", "pass"), ("port != 4500", "block"), ("port > 4499", "pass"),
    ("port >= 4501", "block"), ("port < 4501", "pass"), ("port <= 4499", "block"),
    ("port 4000:5000", "pass"), ("port 4500:4500", "pass"), ("port 4501:5000", "block"),
    ("port 4499 >< 4501", "pass"), ("port 4500 >< 4501", "block"),
    ("port 4000 <> 5000", "block"), ("port 100 <> 200", "pass"),
])
def test_port_forms(port, nat_t):
    sr = f"block return all\npass in proto udp from any to any {port}\n" + NAT
    assert decisions(sr)["nat-t"] == nat_t


def test_a_port_name_the_engine_does_not_know_is_unknown():
    sr = "block return all\npass in proto udp from any to any port = nosuchsvc\n" + NAT
    assert decisions(sr)["nat-t"] == "unknown"


def test_source_ports_depend_on_the_client():
    sr = "block return all\npass in proto udp from any port = 500 to any\n" + NAT
    assert decisions(sr)["ike"] == "unknown"


@pytest.mark.parametrize("to,esp", [
    ("192.0.2.1", "pass"), ("192.0.2.0/24", "pass"), ("192.0.2.2", "block"),
    ("! 192.0.2.1", "block"), ("! 198.51.100.0/24", "pass"), ("(vio0)", "pass"),
    ("(egress)", "pass"), ("! (egress)", "block"), ("192.0.2.0 - 192.0.2.9", "pass"),
    ("192.0.2.5 - 192.0.2.9", "block"), ("2001:db8::1", "block"),
])
def test_destination_address_forms(to, esp):
    sr = f"block return all\npass in proto esp from any to {to}\n" + NAT
    assert decisions(sr)["esp"] == esp


@pytest.mark.parametrize("src,ppp", [
    ("10.0.0.0/24", "pass"), ("10.0.0.0/16", "pass"), ("10.1.0.0/24", "block"),
    ("! 10.1.0.0/24", "pass"), ("10.0.0.0/25", "unknown"),
])
def test_source_networks_against_the_vpn_network(src, ppp):
    sr = f"block return all\npass in on pppx from {src} to any flags S/SA\n" + NAT
    assert decisions(sr)["ppp-in"] == ppp


def test_an_internet_destination_is_outside_the_vpn_network():
    sr = ("block return all\npass in on pppx inet proto tcp from 10.0.0.0/24 "
          "to ! 10.0.0.0/24 flags S/SA\n" + NAT)
    assert decisions(sr)["ppp-in"] == "pass"
    sr = "block return all\npass in on pppx from any to 10.0.0.0/24 flags S/SA\n" + NAT
    assert decisions(sr)["ppp-in"] == "block"
    sr = "block return all\npass in on pppx from any to 8.8.8.8 flags S/SA\n" + NAT
    assert decisions(sr)["ppp-in"] == "unknown"


def test_address_families():
    assert decisions("block return all\npass in inet6 proto esp all\n" + NAT)["esp"] == "block"
    assert decisions("block return all\npass in inet proto esp all\n" + NAT)["esp"] == "pass"


def test_protocols_by_name_and_number():
    assert decisions("block return all\npass in proto 50 all\n" + NAT)["esp"] == "pass"
    assert decisions("block return all\npass in proto ah all\n" + NAT)["esp"] == "block"
    assert decisions("block return all\npass in proto tcp all\n" + NAT)["ppp-in"] == "pass"


def test_a_table_makes_the_class_unknown_never_a_guess():
    v = verdicts("pass all flags S/SA\nblock return in quick from <bad> to any\n" + NAT)
    assert v["ike"].decision == "unknown"
    assert "<bad>" in v["ike"].reason
    # ...unless every branch ends the same way: a table in a pass rule after a pass
    d = decisions("pass all flags S/SA\npass in from <friends> to any flags S/SA\n" + NAT)
    assert d["ike"] == "pass"


@pytest.mark.parametrize("tail", [
    "route-to (em1 192.0.2.254)", "rdr-to 127.0.0.1 port 5000", "tagged VPN",
    "rtable 1", "probability 50%", "divert-to 127.0.0.1 port 8080",
])
def test_options_the_engine_cannot_resolve_make_the_class_unknown(tail):
    sr = f"block return all\npass in proto esp all {tail}\n" + NAT
    assert decisions(sr)["esp"] == "unknown"


def test_on_rdomain_is_unknown():
    sr = "block return all\npass in on rdomain 1 proto esp all\n" + NAT
    assert decisions(sr)["esp"] == "unknown"


def test_harmless_options_do_not_matter():
    sr = ('block return all\npass in log quick proto esp all keep state (if-bound) '
          'label "vpn" tag VPN set (prio 3)\n' + NAT)
    assert decisions(sr)["esp"] == "pass"


def test_user_rules_do_not_match_forwarded_traffic():
    # pf.conf(5): for forwarded connections the user is unknown (print_ugid: `unknown`)
    sr = ("pass all flags S/SA\nblock return out log proto tcp all user = 55\n" + NAT)
    assert decisions(sr)["nat-out"] == "pass"
    sr = ("pass all flags S/SA\nblock return out proto tcp all user = unknown\n" + NAT)
    assert decisions(sr)["nat-out"] == "block"


def test_without_the_egress_interface_its_classes_are_unknown():
    d = decisions("pass all flags S/SA\n" + NAT, egress=None)
    assert d == {"ike": "unknown", "nat-t": "unknown", "esp": "unknown", "l2tp": "pass",
                 "ppp-in": "pass", "nat-out": "unknown"}


def test_skipped_egress_means_no_nat():
    d = decisions("pass all flags S/SA\n" + NAT, skipped=frozenset({"vio0"}))
    assert d["nat-out"] == "block" and d["ike"] == "pass"


def test_skip_on_a_group_covers_its_members():
    sr = "block return all\n" + NAT
    d = decisions(sr, skipped=frozenset({"egress"}))
    assert d["ike"] == d["esp"] == "pass"


def test_egress_interfaces_from_ifconfig():
    text = ("vio0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
            "\tlladdr fe:e1:ba:d0:12:34\n"
            "\tindex 1 priority 0 llprio 3\n"
            "\tgroups: egress\n"
            "\tinet 192.0.2.1 netmask 0xffffff00 broadcast 192.0.2.255\n")
    assert egress_interfaces(parse_ifconfig(text, "ifconfig egress")) == (EGRESS,)


def test_an_anchor_that_matches_some_clients_splits_the_class():
    sr = ('pass all flags S/SA\nanchor "bad" in from <bad> to any {\n'
          '  block return all\n}\n' + NAT)
    v = verdicts(sr)
    assert v["ike"].decision == "unknown" and "<bad>" in v["ike"].reason
    # the same anchor holding only passes changes nothing
    sr = 'pass all flags S/SA\nanchor "ok" in from <ok> to any {\n  pass all flags S/SA\n}\n'
    assert decisions(sr + NAT) == ALL_PASS


def test_a_quick_anchor_whose_inside_matches_only_some_packets():
    sr = ('anchor "a" quick all {\n  pass in from <t> to any flags S/SA\n}\n'
          'block return all\n' + NAT)
    assert decisions(sr)["ike"] == "unknown"


@pytest.mark.parametrize("rule,ike", [
    ("pass in proto udp from any to self", "pass"),
    ("pass in proto udp from any to (self)", "pass"),
    ("pass in proto udp from self to any", "block"),
    ("pass in proto udp from any to ! (self)", "block"),
])
def test_self_is_this_hosts_addresses(rule, ike):
    assert decisions(f"block return all\n{rule}\n" + NAT)["ike"] == ike


def test_negated_tagged_is_unknown_not_misread():
    v = verdicts("block return all\npass in proto esp all ! tagged VPN\n" + NAT)
    assert v["esp"].decision == "unknown" and "tagged VPN" in v["esp"].reason
