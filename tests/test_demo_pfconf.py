"""The demo's pf.conf and ipsec.conf readers: print_rule() layout and parse.y errors.

Expected rule lines are those OpenBSD printed in the corpus: the guide's
`pfctl -vnf` (../shared/openbsd-samples/SOURCES.md, "Facts from the guide"),
pfctl/real/oams63-sr.txt and the regress .ok files (pf4, pf13, pf48, pf87).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from obsdvpn_agent.host.demo.ipsecconf import IpsecConfError, read_ipsecconf
from obsdvpn_agent.host.demo.pfconf import Net, PfConfError, compile_pfconf, rule_lines
from obsdvpn_agent.parsers import pfctl

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
