"""Tests of parsers/ifconfig.py against ifconfig samples and ifconfig.c's printf formats."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conftest import SAMPLES, sample_files, sample_id
from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.ifconfig import (
    Inet6Address,
    InetAddress,
    Interface,
    parse_ifconfig,
    parse_ifconfig_error,
)

SAMPLE_FILES = sample_files("ifconfig/**/*.txt", "derived/ifconfig/*.txt",
                            "derived2/ifconfig/*.txt")

P2P_FLAGS = ("UP", "POINTOPOINT", "RUNNING", "MULTICAST")
PPPX0 = Interface(
    name="pppx0", flags=0x8051, flag_names=P2P_FLAGS, mtu=1400, description="alice",
    index=7, groups=("pppx",),
    inet=(InetAddress("10.0.0.1", "10.0.0.2", "0xffffffff", None),), inet6=(),
    unknown_lines=0)

EXPECTED = {
    "derived/ifconfig/pppx0-session.txt": (PPPX0,),
    "derived/ifconfig/pppac0-concentrator.txt": (Interface(
        name="pppac0", flags=0x843, flag_names=("UP", "BROADCAST", "RUNNING", "SIMPLEX"),
        mtu=65532, description=None, index=6, groups=(),
        inet=(InetAddress("10.0.0.1", None, "0xffffff00", "10.0.0.255"),), inet6=(),
        unknown_lines=0),),
    "ifconfig/real/libreswan-sec1-ipv46-west.txt": (Interface(
        name="sec1", flags=0x8051, flag_names=P2P_FLAGS, mtu=1280, description=None,
        index=7, groups=("sec",),
        inet=(InetAddress("198.18.45.45", "198.18.23.23", "0xffffffff", None),),
        # First line: link-local with an unset peer, printed as `-->  prefixlen`.
        inet6=(Inet6Address("fe80::1000:ff:feab:cdff%sec1", None, 64),
               Inet6Address("2001:db8:45::45", "2001:db8:23::23", 128)),
        unknown_lines=0),),
    # derived2/: descriptions as npppd sets them (the username): cut at IFDESCRSIZE-1 = 63
    # bytes, UTF-8 and blanks kept as they are.
    "derived2/ifconfig/derived-pppx-3-desc-truncated-utf8-blank.txt": (
        dataclasses.replace(
            PPPX0, mtu=1360,
            description="Jean-Baptiste de la Fontaine-Rochefoucauld: field engineer, sit"),
        dataclasses.replace(PPPX0, name="pppx1", description="m\u00fcller", index=8,
                            inet=(InetAddress("10.0.0.1", "10.0.0.3", "0xffffffff", None),)),
        dataclasses.replace(PPPX0, name="pppx2", description="Jean Dupont", index=9,
                            inet=(InetAddress("10.0.0.1", "10.0.0.4", "0xffffffff", None),)),
    ),
    # No description line when it is empty; ` rdomain %d` on the header line.
    "derived2/ifconfig/derived-pppx-nodesc-rdomain.txt": (
        dataclasses.replace(PPPX0, name="pppx3", description=None, index=10,
                            inet=(InetAddress("10.0.0.1", "10.0.0.5", "0xffffffff", None),)),
    ),
}



def test_every_sample_has_expectations():
    assert SAMPLE_FILES, f"no samples under {SAMPLES}"
    assert {sample_id(p) for p in SAMPLE_FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=sample_id)
def test_sample(path: Path):
    assert parse_ifconfig(path.read_text()) == EXPECTED[sample_id(path)]


def test_group_output_with_several_sessions():
    # Synthetic, but only from real-layout blocks: `ifconfig pppx` prints the members
    # one after another, so this is derived/ifconfig/pppx0-session.txt three times
    # with the unit, index, username and peer address renamed.  The third username
    # has a blank, which a description may hold (free text from SIOCSIFDESCR).
    block = (SAMPLES / "derived/ifconfig/pppx0-session.txt").read_text()
    text = (block
            + block.replace("pppx0", "pppx1").replace("alice", "bob")
                   .replace("index 7", "index 8").replace("10.0.0.2", "10.0.0.3")
            + block.replace("pppx0", "pppx2").replace("alice", "carol ann")
                   .replace("index 7", "index 9").replace("10.0.0.2", "10.0.0.4"))
    interfaces = parse_ifconfig(text, command="ifconfig pppx")
    assert [i.name for i in interfaces] == ["pppx0", "pppx1", "pppx2"]
    assert [i.description for i in interfaces] == ["alice", "bob", "carol ann"]
    assert [i.index for i in interfaces] == [7, 8, 9]
    assert [i.inet[0].peer for i in interfaces] == ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert all(i.groups == ("pppx",) and i.flags == 0x8051 for i in interfaces)


# Written from ifconfig.c rev 1.472 status()/in_status()/in6_alias() formats; the
# addresses and MAC are invented.  An Ethernet with lladdr/media/status, and enc0,
# whose mtu 0 is not printed (`if (mtu) printf(" mtu %lu")`) and flags are `0<>`.
GENERIC = (
    "em0: flags=208843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,AUTOCONF6> mtu 1500\n"
    "\tlladdr 52:54:00:12:34:56\n"
    "\tdescription: uplink to ISP\n"
    "\tindex 1 priority 0 llprio 3\n"
    "\tgroups: egress\n"
    "\tmedia: Ethernet autoselect (1000baseT full-duplex)\n"
    "\tstatus: active\n"
    "\tinet6 fe80::5054:ff:fe12:3456%em0 prefixlen 64 scopeid 0x1\n"
    "\tinet6 2001:db8::10 prefixlen 64 autoconf pltime 604066 vltime 2591866\n"
    "\tinet 192.0.2.10 netmask 0xffffff00 broadcast 192.0.2.255\n"
    "\tinet 192.0.2.11 netmask 0xffffffff\n"
    "enc0: flags=0<>\n"
    "\tindex 2 priority 0 llprio 3\n"
    "\tgroups: enc\n"
    "\tstatus: active\n"
    "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> rdomain 1 mtu 32768\n"
    "\tindex 5 priority 0 llprio 3\n"
    "\tgroups: lo\n"
    "\tsomething: new from a later release\n"
    "\tinet 127.0.0.1 netmask 0xff000000\n"
)


def test_generic_interfaces():
    em0, enc0, lo0 = parse_ifconfig(GENERIC)
    assert em0.flags == 0x208843 and em0.flag_names[-1] == "AUTOCONF6"
    assert em0.description == "uplink to ISP"
    assert em0.groups == ("egress",) and em0.mtu == 1500 and em0.index == 1
    assert em0.inet == (InetAddress("192.0.2.10", None, "0xffffff00", "192.0.2.255"),
                        InetAddress("192.0.2.11", None, "0xffffffff", None))
    assert em0.inet6 == (Inet6Address("fe80::5054:ff:fe12:3456%em0", None, 64),
                         Inet6Address("2001:db8::10", None, 64))
    assert em0.unknown_lines == 0
    assert (enc0.name, enc0.flags, enc0.flag_names, enc0.mtu) == ("enc0", 0, (), 0)
    assert lo0.mtu == 32768 and lo0.unknown_lines == 1


@pytest.mark.parametrize("stderr, name", [
    ("pppx: no such interface\n", "pppx"),        # group gone with the last session
    ("pppx0: no such interface\n", "pppx0"),
    ("pppac0: no such interface", "pppac0"),
    ("ifconfig: SIOCGIFFLAGS: Permission denied\n", None),
    ("", None),
])
def test_parse_ifconfig_error(stderr: str, name: str | None):
    assert parse_ifconfig_error(stderr) == name


PPPX0_TEXT = (SAMPLES / "derived/ifconfig/pppx0-session.txt").read_text()


@pytest.mark.parametrize("text, lineno", [
    (PPPX0_TEXT.replace("netmask", "mask"), 5),                  # renamed field
    (PPPX0_TEXT.replace("mtu 1400", "mtu 14x0"), 1),             # bad number
    (PPPX0_TEXT.replace("mtu 1400", "mtux 1400"), 1),            # renamed header field
    (PPPX0_TEXT.replace("flags=8051", "flags=80g1"), 1),         # bad hex
    (PPPX0_TEXT.replace("index 7", "index seven"), 3),
    (PPPX0_TEXT.replace("0xffffffff", "255.255.255.255"), 5),
    (PPPX0_TEXT.replace("10.0.0.2 netmask 0xffffffff", "10.0.0.2 netm"), 5),   # cut line
    (PPPX0_TEXT.splitlines()[0][:30], 1),                        # cut header
    (PPPX0_TEXT.splitlines()[0] + "\n", 1),                      # only the header
    ("\tinet 10.0.0.1 --> 10.0.0.2 netmask 0xffffffff\n", 1),    # no header
    ("ifconfig: SIOCGIFGMEMB: Permission denied\n", 1),          # stderr text in stdout
    ("pppx: no such interface\n", 1),
    ("lorem ipsum\ndolor\n", 1),
    ("", None),                                                  # nothing at all
    (("sec1: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1280\n"
     "\tindex 7 priority 0 llprio 3\n"
     "\tinet6 2001:db8:45::45 --> 2001:db8:23::23 tentative\n"), 3),   # no prefixlen
    (("sec1: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1280\n"
     "\tindex 7 priority 0 llprio 3\n"
     "\tinet6 2001:db8:45::45 prefixlen 128 shiny\n"), 3),        # unknown inet6 word
])
def test_bad_output_raises(text: str, lineno: int | None):
    with pytest.raises(ParseError) as err:
        parse_ifconfig(text, command="ifconfig pppx")
    assert err.value.command == "ifconfig pppx"
    assert err.value.lineno == lineno
