"""The parsers' fast readings of usual output agree with their line-by-line readings.

ipsecctl, npppctl session all and ifconfig first match the lines (or whole
entries) their command prints for every session, and hand anything else to
the line-by-line reading.  These tests make each parser read the same output
both ways (a perturbation the line-by-line reading ignores, but the fast
reading refuses) and require the same records, on the demo host's outputs of
many sessions; and they feed the fast readings the inputs where a pattern
could be laxer than the grammar, which must still be rejected.
"""

from __future__ import annotations

import time

import pytest

from obsdvpn_agent.host.demo import commands, events
from obsdvpn_agent.parsers import ParseError, ifconfig, ipsecctl, npppctl


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    state = events.reset(time.time(), 60)
    out = {}
    for argv in (("/sbin/ipsecctl", "-sa"), ("/usr/sbin/npppctl", "-n", "session", "all"),
                 ("/sbin/ifconfig", "pppx")):
        code, stdout, _ = commands.run_command(state, argv, time.time(), True)
        assert code == 0 and stdout
        out[argv[0].rsplit("/", 1)[1]] = stdout
    return out


def test_ipsecctl_usual_lines_read_as_the_cursor_reads_them(outputs):
    text = outputs["ipsecctl"]
    assert sum(1 for line in text.splitlines() if ipsecctl._USUAL_FLOW.fullmatch(line)) == 120
    assert sum(1 for line in text.splitlines() if ipsecctl._USUAL_SA.fullmatch(line)) == 120
    # Two blanks between words: str.split() does not care, the patterns refuse.
    spaced = "\n".join(line.replace(" ", "  ") for line in text.splitlines())
    assert not any(ipsecctl._USUAL_FLOW.fullmatch(line) or ipsecctl._USUAL_SA.fullmatch(line)
                   for line in spaced.splitlines())
    fast, slow = ipsecctl.parse_sa(text), ipsecctl.parse_sa(spaced)
    assert len(fast.flows) == 120 and len(fast.sas) == 120
    assert fast == slow


@pytest.mark.parametrize("line, reason", [
    # `rsa` before `type` is the auth (_flow() pops it), so dstid has no value.
    ("flow esp in from 192.0.2.1 to 198.51.100.1 dstid rsa type use", "no identity after `dstid`"),
    ("flow esp in from 192.0.2.1 to rsa type use", "line ends where destination address"),
    # A srcid ends at `dstid`: this one is empty.
    ("flow esp in from 192.0.2.1 to 198.51.100.1 srcid dstid dstid x type use",
     "no identity after `srcid`"),
    ("flow esp in proto from 192.0.2.1 to 198.51.100.1 type use", "expected `from`"),
    ("flow esp in from 192.0.2.1 to 198.51.100.1 peer type use", "line ends where a value"),
    ("flow esp in from 192.0.2.1 to 198.51.100.1 type bogus", "unknown flow type"),
    ("esp transport from 192.0.2.1 to 198.51.100.1 spi 0x1 auth a auth b", "unknown keyword `auth`"),
    ("esp transport from 192.0.2.1 to 198.51.100.1 spi", "line ends where SPI"),
])
def test_ipsecctl_lines_the_patterns_must_not_accept(line, reason):
    with pytest.raises(ParseError) as err:
        ipsecctl.parse_sa(line + "\n")
    assert reason in err.value.reason


def test_ipsecctl_keyword_values_read_as_the_cursor_reads_them():
    # Keywords as values: each optional keyword takes the next word, whatever it is.
    flow = ipsecctl.parse_sa("flow esp in proto from from port port to to to port port "
                             "local peer peer srcid srcid x dstid dstid psk type use\n").flows[0]
    assert (flow.proto, flow.src, flow.src_port, flow.dst, flow.dst_port) == (
        "from", "port", "to", "to", "port")
    assert (flow.local, flow.peer, flow.srcid, flow.dstid, flow.auth) == (
        "peer", "srcid", "x", "dstid", "psk")
    # An identity with blanks (an ASN.1 DN) is the cursor's.
    flow = ipsecctl.parse_sa("flow esp out from 10.0.1.0/24 to 10.0.2.0/24 peer 192.0.2.2 "
                             "srcid C=US, O=Example dstid CN=peer rsa type require\n").flows[0]
    assert (flow.srcid, flow.dstid, flow.auth) == ("C=US, O=Example", "CN=peer", "rsa")


def test_npppctl_usual_entries_read_as_line_by_line(outputs):
    text = outputs["npppctl"]
    fast = npppctl._usual_report(text)
    assert fast is not None and len(fast.sessions) == 60
    # A blank-only line: skipped line by line, refused by the entry pattern.
    assert npppctl._usual_report(text + "  \n") is None
    assert npppctl.parse_session_all_report(text) == fast
    assert npppctl.parse_session_all_report(text + "  \n") == fast
    without_mru = "".join(line + "\n" for line in text.splitlines()
                          if not line.lstrip().startswith("MRU "))
    old = npppctl._usual_report(without_mru)
    assert old is not None and all(s.mru is None for s in old.sessions)
    assert npppctl.parse_session_all_report(without_mru + "  \n") == old


def _entry(outputs: dict[str, str]) -> str:
    return outputs["npppctl"].split("\n\n", 1)[0] + "\n"


@pytest.mark.parametrize("label, value, reason", [
    ("Assigned IPv4 Address", "10.0.0.02", "not an IPv4 address"),
    ("Assigned IPv4 Address", "10.0.0.256", "not an IPv4 address"),
    ("Input Packets", "1" * 21, "u_int64"),
    ("Input Bytes", "5 (0.0 KB)", "humanized size"),
    ("Elapsed Time", "3725 sec (1 hours and 2 minutes)", "expected `N sec"),
    ("Tunnel From", "203.0.113.10:99999", "host:port"),
    ("Concentrated Interface", "", "empty Concentrated Interface"),
    ("Ppp Id", "99", "`Ppp Id = "),
])
def test_npppctl_entries_the_pattern_must_not_accept(outputs, label, value, reason):
    entry = _entry(outputs)
    lines = entry.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(label + " "))
    lines[at] = lines[at].split(": ", 1)[0] + ": " + value
    with pytest.raises(ParseError) as err:
        npppctl.parse_session_all_report("\n".join(lines) + "\n")
    assert reason in str(err.value)


def test_ifconfig_usual_blocks_read_as_line_by_line(outputs):
    text = outputs["ifconfig"]
    fast = ifconfig._usual_interfaces(text)
    assert fast is not None and len(fast) == 60
    assert ifconfig._usual_interfaces(text + " \n") is None
    assert ifconfig.parse_ifconfig(text + " \n") == fast
    # Blanks-only descriptions are no words after the key: "" either way.
    blank = text.replace("\tdescription: user0001\n", "\tdescription:  \n", 1)
    assert ifconfig.parse_ifconfig(blank)[0].description == ""
    assert ifconfig.parse_ifconfig(blank + " \n")[0].description == ""


def test_ifconfig_description_without_its_blank_is_a_parse_error():
    with pytest.raises(ParseError, match="description: TEXT"):
        ifconfig.parse_ifconfig("pppx0: flags=8051<UP> mtu 1400\n\tdescription:\talice\n"
                                "\tindex 7 priority 0 llprio 3\n")
