"""The demo's pf.conf and ipsec.conf readers: print_rule() layout and parse.y errors.

Expected rule lines are those OpenBSD printed in the corpus: the guide's
`pfctl -vnf` (tests/fixtures/openbsd-samples/SOURCES.md, "Facts from the guide"),
pfctl/real/oams63-sr.txt and the regress .ok files (pf4, pf13, pf48, pf87).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from obsdvpn_agent import commands as table
from obsdvpn_agent.checks.pfpath import EgressInterface, evaluate_path
from obsdvpn_agent.host.demo import DemoHost, render
from obsdvpn_agent.host.demo.ipsecconf import IpsecConfError, read_ipsecconf
from obsdvpn_agent.host.demo.pfconf import (
    CLIENT,
    Net,
    Packet,
    PfConfError,
    client_packets,
    compile_pfconf,
    decide,
    path_blocked,
    rule_lines,
    skipped,
)
from obsdvpn_agent.parsers import pfctl
from test_pfpath import CASES, PATH

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NET = Net({"vio0": ["192.0.2.1"], "lo0": ["127.0.0.1"], "enc0": []},
          {"egress": ["vio0"], "lo": ["lo0"]})


def rules(text: str) -> list[str]:
    return rule_lines(compile_pfconf(text, "/etc/pf.conf", NET).rules, recurse=True)


@pytest.mark.parametrize("line,printed", [
    # the guide's pfctl -vnf lines
    ("pass in on vio0 proto udp from any to any port 500",
     ["pass in on vio0 proto udp from any to any port = 500"]),
    ("pass in on vio0 proto esp", ["pass in on vio0 proto esp all"]),
    ("pass on enc0 keep state (if-bound)", ["pass on enc0 all flags S/SA keep state (if-bound)"]),
    ("pass on pppx from 10.0.0.0/24", ["pass on pppx inet from 10.0.0.0/24 to any flags S/SA"]),
    ("match out on vio0 inet from 10.0.0.0/24 nat-to (vio0)",
     ["match out on vio0 inet from 10.0.0.0/24 to any nat-to (vio0) round-robin"]),
    # pf4.ok / pf13.ok / pf48.ok / pf87.ok shapes (ports as numbers since 7.x)
    ("block in all", ["block drop in all"]),
    ("block in from ! 10.0.0.0/8", ["block drop in inet from ! 10.0.0.0/8 to any"]),
    ("block in proto tcp from any port 21 >< 2048 to any port 1024:2048",
     ["block drop in proto tcp from any port 21 >< 2048 to any port 1024:2048"]),
    ("block in proto tcp from any port != 1234",
     ["block drop in proto tcp from any port != 1234 to any"]),
    ("pass in quick on enc0 inet", ["pass in quick on enc0 inet all flags S/SA"]),
    ("pass in from <regress> to any", ["pass in from <regress> to any flags S/SA"]),
    ("pass in inet proto tcp to 10.0.0.1 port www",
     ["pass in inet proto tcp from any to 10.0.0.1 port = 80 flags S/SA"]),
    ("pass in on egress proto { tcp udp } to port domain",
     ["pass in on egress proto tcp from any to any port = 53 flags S/SA",
      "pass in on egress proto udp from any to any port = 53"]),
    ("pass in from egress", ["pass in inet from 192.0.2.1 to any flags S/SA"]),
    ("pass no state", ["pass all no state"]),
    ("pass flags any", ["pass all flags any"]),
    ('pass in log quick proto tcp label "ssh in"',
     ['pass in log quick proto tcp all flags S/SA label "ssh in"']),
    ("match out tagged VPN", ["match out all tagged VPN"]),
])
def test_print_rule_layout(line, printed):
    assert rules(line + "\n") == printed


def test_the_guides_vpn_ruleset_parses_like_the_fixture():
    """fixtures/pfctl/vpn-l2tp-sr.txt holds the guide's rules; the demo prints
    the same lines for the pf.conf they come from (bar the `set (prio ...)`
    match option, outside the demo's subset)."""
    pf_conf = """\
ext_if = "vio0"
vpn_if = "pppx"
set skip on lo
block return
pass
block return in on ! lo0 proto tcp to port 6000:6010
block return out log proto {tcp udp} user _pbuild
pass in on $ext_if proto udp from any to any port { isakmp, ipsec-nat-t }
pass in on $ext_if proto esp
pass on enc0 keep state (if-bound)
pass on $vpn_if from 10.0.0.0/24 to any
match out on $ext_if inet from 10.0.0.0/24 to any nat-to ($ext_if)
"""
    fixture = (FIXTURES / "pfctl" / "vpn-l2tp-sr.txt").read_text().splitlines()
    expected = [line.replace(" set (prio(3, 4))", "") for line in fixture]
    ours = rules(pf_conf)
    assert ours == expected
    parsed = pfctl.parse_rules("\n".join(ours) + "\n")
    assert len(parsed.rules) == len(expected)


def test_verbose_lines_macros_and_options():
    text = ('a = "vio0"\nb = "{ 500 4500 }"\nset skip on { lo enc0 }\n'
            "set block-policy return\nset reassemble no\nset limit states 5000\n"
            "set debug notice\nblock in on $a proto udp to port $b\n")
    compiled = compile_pfconf(text, "/etc/pf.conf", NET)
    assert compiled.printed == ('a = "vio0"', 'b = "{ 500 4500 }"', "set skip on { lo enc0 }",
                                "set block-policy return", "set reassemble no ",
                                "set limit states 5000", "set debug notice")
    assert rule_lines(compiled.rules, recurse=False) == [
        "block return in on vio0 proto udp from any to any port = 500",
        "block return in on vio0 proto udp from any to any port = 4500"]
    assert compiled.limits == {"states": 5000}
    assert compiled.debug == "notice"


@pytest.mark.parametrize("text,errors", [
    ("pass\nfoo\n", ["/etc/pf.conf:2: syntax error"]),
    ("pass from $nope\n", ["/etc/pf.conf:1: macro 'nope' not defined"]),
    ("pass to port nosuchservice\n", ["/etc/pf.conf:1: unknown port nosuchservice"]),
    ("pass from nosuch.example\n", ["/etc/pf.conf:1: could not parse host specification"]),
    ("pass\nblock in quick bogus\n\npass proto nosuch\n",
     ["/etc/pf.conf:2: syntax error", "/etc/pf.conf:4: unknown protocol nosuch"]),
    ("pass in on vio0 \\\n  proto tcp \\\n  bogus\n", ["/etc/pf.conf:3: syntax error"]),
])
def test_errors_like_yyerror(text, errors):
    with pytest.raises(PfConfError) as caught:
        compile_pfconf(text, "/etc/pf.conf", NET)
    assert caught.value.errors == errors


def test_a_carriage_return_is_a_syntax_error_not_a_crash():
    # A pf.conf saved with CRLF line ends: the demo lexer knows no \r.
    with pytest.raises(PfConfError) as caught:
        compile_pfconf("pass in on vio0\r\npass out\n", "/etc/pf.conf", NET)
    assert caught.value.errors == ["/etc/pf.conf:1: syntax error"]


def test_line_continuation_joins_a_rule():
    assert rules("pass in on vio0 \\\n\tproto udp \\\n\tto port isakmp\n") == [
        "pass in on vio0 proto udp from any to any port = 500"]


IPSEC_CONF = """\
ike passive esp transport \\
	proto udp from egress to any port l2tp \\
	main auth "hmac-sha1" enc "aes" group modp1024 \\
	quick auth "hmac-sha1" enc "aes" \\
	psk "not-a-real-secret"
"""


def test_ipsec_conf_reader():
    conf = read_ipsecconf(IPSEC_CONF, "/etc/ipsec.conf", NET.exists)
    assert (conf.rules, conf.quick_auth, conf.quick_enc) == (1, "hmac-sha1", "aes")
    gcm = read_ipsecconf('ike esp from 192.0.2.1 to any quick enc aes-128-gcm psk "x"\n',
                         "/etc/ipsec.conf", NET.exists)
    assert (gcm.quick_auth, gcm.quick_enc) == ("", "aes-128-gcm")


@pytest.mark.parametrize("text,error", [
    ("ike passive esp bogus\n", "/etc/ipsec.conf: 1: syntax error"),
    ("\nike esp from egress to any quick enc rot13\n",
     "/etc/ipsec.conf: 2: rot13 not a valid transform"),
    ("ike esp from $x to any\n", "/etc/ipsec.conf: 1: macro 'x' not defined"),
    ("flow esp from 10.0.0.0/24 to any\n", "/etc/ipsec.conf: 1: syntax error"),
])
def test_ipsec_conf_errors(text, error):
    with pytest.raises(IpsecConfError) as caught:
        read_ipsecconf(text, "/etc/ipsec.conf", NET.exists)
    assert caught.value.errors == [error]


# --- inline anchors, set skip, pfctl -a '*' -sr and -sI -v ---------------------------


# The host of the path fixtures (tests/fixtures/SOURCES.md, "pf path").
PATH_NET = Net({"vio0": ["192.0.2.1"], "lo0": ["127.0.0.1"], "enc0": [], "pflog0": []},
               {"egress": ["vio0"], "lo": ["lo0"], "enc": ["enc0"]})
PF_CONFS = sorted(PATH.glob("*.pf.conf"))


def compiled_fixture(path: Path):
    return compile_pfconf(path.read_text(), "/etc/pf.conf", PATH_NET)


@pytest.mark.parametrize("path", PF_CONFS, ids=lambda p: p.name)
def test_demo_renders_the_path_fixtures_byte_for_byte(path):
    name = path.name[:-len(".pf.conf")]
    c = compiled_fixture(path)
    sr = "".join(f"{line}\n" for line in rule_lines(c.rules, recurse=True))
    assert sr == (PATH / f"{name}.sr-recursive.txt").read_text()
    assert render.pf_interfaces(list(c.rules), PATH_NET, True) == \
        (PATH / f"{name}.sI-v.txt").read_text()


ANCHORED = """\
set skip on { lo enc0 }
block return
anchor "vpn" in {
	pass on vio0 proto udp to port { 500 4500 }
	anchor {
		pass quick proto esp
	}
	anchor "empty" {
	}
}
anchor "ext"
"""


def test_inline_anchors_as_sr_a_star_sr_and_nvf_print_them():
    c = compile_pfconf(ANCHORED, "/etc/pf.conf", NET)
    assert rule_lines(c.rules, recurse=True) == [
        "block return all",
        'anchor "vpn" in all {',
        "  pass on vio0 proto udp from any to any port = 500",
        "  pass on vio0 proto udp from any to any port = 4500",
        "  anchor all {",
        "    pass quick proto esp all",
        "  }",
        '  anchor "empty" all {',
        "  }",
        "}",
        'anchor "ext" all {',
        "}",
    ]
    # pfctl_show_rules() without -a '*': named anchors are one line; unnamed `_N` expand
    assert rule_lines(c.rules, recurse=False) == ["block return all", 'anchor "vpn" in all',
                                                  'anchor "ext" all']
    # pfctl_load_ruleset() (-nvf): an anchor without rules ends its line
    nvf = rule_lines(c.rules, recurse=True, nvf=True)
    assert '  anchor "empty" all' in nvf and 'anchor "ext" all' in nvf
    assert skipped(c.rules) == ["lo", "enc0"]


@pytest.mark.parametrize("text,errors", [
    ('anchor "vpn" { pass }\n', ["/etc/pf.conf:1: syntax error"]),
    # end of file inside the block: reported on the line after the last one
    ('anchor "vpn" {\npass\n', ["/etc/pf.conf:3: syntax error"]),
    ("pass\n}\n", ["/etc/pf.conf:2: syntax error"]),
    ('anchor "vpn" {\nset skip on lo\n}\n', ["/etc/pf.conf:2: syntax error"]),
    ('anchor "vpn" {\nx = "1"\n}\n', ["/etc/pf.conf:2: syntax error"]),
    ("anchor\n", ["/etc/pf.conf:1: anchors without explicit rules must specify a name"]),
    ('anchor "_x" {\n}\n',
     ["/etc/pf.conf:1: anchor names beginning with '_' are reserved for internal use"]),
    ('anchor "a/b" {\n}\n',
     ["/etc/pf.conf:2: anchor paths containing '/' cannot be used for inline anchors."]),
    ('anchor "a" {\n}\nanchor "a" {\n}\n', ["/etc/pf.conf:4: inline anchor 'a' already exists"]),
    ('anchor "a" keep state {\n}\n',
     ["/etc/pf.conf:2: cannot specify state handling on anchors"]),
])
def test_anchor_errors_like_parse_y(text, errors):
    """yyerror texts of sbin/pfctl/parse.y rev 1.719 anchorname/anchorrule/pfa_anchor."""
    with pytest.raises(PfConfError) as caught:
        compile_pfconf(text, "/etc/pf.conf", NET)
    assert caught.value.errors == errors


def test_demo_pfctl_a_star_sr_and_si_v(tmp_path):
    host = DemoHost(tmp_path / "state.json")
    host.info()
    host.write_file(table.PF_CONF, ANCHORED, 0o600)
    assert host.run((table.PFCTL, "-f", table.PF_CONF), timeout_s=5).returncode == 0
    tree = host.run(table.PFCTL_RULES_TREE.argv, timeout_s=5)
    assert tree.returncode == 0 and tree.stdout.startswith('block return all\nanchor "vpn" in')
    plain = host.run(table.PFCTL_RULES.argv, timeout_s=5)
    assert plain.stdout == 'block return all\nanchor "vpn" in all\nanchor "ext" all\n'
    ifaces = host.run(table.PFCTL_INTERFACES.argv, timeout_s=5)
    assert "enc0 (skip)\n" in ifaces.stdout and "lo0 (skip)\n" in ifaces.stdout
    assert "\nvio0\n" in ifaces.stdout and ifaces.stdout.startswith("all\n")
    user = DemoHost(tmp_path / "state.json", as_root=False)
    denied = user.run(table.PFCTL_INTERFACES.argv, timeout_s=5)
    assert (denied.returncode, denied.stderr) == (1, "pfctl: /dev/pf: Permission denied\n")


# --- the demo kernel ---------------------------------------------------------------

PACKETS = client_packets("vio0", "192.0.2.1", "10.0.0.0/24", "pppx0")
# What each fixture blocks, as tests/test_pfpath.py expects the engine to judge it.
EXPECTED_BLOCKED = {name: {k for k, v in case.items() if v == "block"}
                    for name, case in CASES.items()}


def kernel(entries, net=PATH_NET) -> dict[str, bool]:
    """Class -> works: passed, and for nat-out also translated."""
    out = {}
    for pkt in PACKETS:
        v = decide(entries, net, pkt)
        out[pkt.id] = v.passed and (v.nat or pkt.id != "nat-out")
    return out


@pytest.mark.parametrize("path", PF_CONFS, ids=lambda p: p.name)
def test_demo_kernel_on_the_fixtures(path):
    name = path.name[:-len(".pf.conf")]
    entries = compiled_fixture(path).rules
    blocked = {k for k, ok in kernel(entries).items() if not ok}
    assert blocked == EXPECTED_BLOCKED.get(name, set())
    reason = path_blocked(entries, PATH_NET, "vio0", "192.0.2.1", "10.0.0.0/24", "pppx0")
    assert (reason is None) == (not blocked)


def test_demo_kernel_semantics():
    def works(text: str, pkt_id: str) -> bool:
        return kernel(compile_pfconf(text, "/etc/pf.conf", PATH_NET).rules)[pkt_id]

    assert works("pass\nblock in proto esp\npass in proto esp\n", "esp")        # last match
    assert not works("block in quick proto esp\npass\n", "esp")                 # quick
    assert not works("block\nmatch in proto esp\n", "esp")                      # match
    assert works('block\nanchor "a" {\n  pass in quick proto esp\n}\nblock\n', "esp")
    assert not works('block\nanchor "a" out {\n  pass proto esp\n}\n', "esp")
    assert works("set skip on enc0\nblock\n", "l2tp")                           # skip
    assert works("set skip on pppx\nblock\n", "ppp-in")                        # group skip
    assert not works("pass\nblock in on egress\n", "ike")                       # group
    assert works("block\npass in proto udp to port 4499 >< 4501\n", "nat-t")
    assert not works("pass\nblock in from " + CLIENT + "\n", "ike")


def test_demo_kernel_uid_of_forwarded_traffic_is_unknown():
    text = "pass\nblock return out log proto {tcp udp} user _pbuild\nmatch out nat-to (vio0)\n"
    assert kernel(compile_pfconf(text, "/etc/pf.conf", PATH_NET).rules)["nat-out"]


@pytest.mark.parametrize("path", PF_CONFS, ids=lambda p: p.name)
def test_demo_kernel_agrees_with_the_agent_engine(path):
    """Differential: the simulated kernel on its own rules vs the agent on the output."""
    c = compiled_fixture(path)
    sr = "".join(f"{line}\n" for line in rule_lines(c.rules, recurse=True))
    ifaces = pfctl.parse_interfaces(render.pf_interfaces(list(c.rules), PATH_NET, True))
    verdicts = evaluate_path(pfctl.parse_rule_tree(sr), frozenset(ifaces.skipped),
                             EgressInterface("vio0", ("egress",), ("192.0.2.1",)),
                             "10.0.0.0/24", "pppx")
    ours = kernel(c.rules)
    for v in verdicts:
        assert v.decision != "unknown", v.reason
        assert (v.decision == "pass") == ours[v.packet], (v.packet, v.reason)


def test_a_packet_record_is_plain_data():
    assert Packet("ike", "in", "vio0", 17, CLIENT, "192.0.2.1", 500, 500).local
