"""isakmpd flags read with isakmpd's own getopt string, and the FIFO answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.isakmpd import (
    has_option,
    parse_flags,
    parse_passive_connections,
    parse_phase1_default,
)
from obsdvpn_agent.parsers.rcctl import parse_get_flags

FIXTURES = Path(__file__).parent / "fixtures" / "rcctl"


def flags_of(name: str) -> str:
    text = (FIXTURES / name).read_text()
    return parse_get_flags(text, 0, "isakmpd").flags


@pytest.mark.parametrize("fixture", ["derived-get-isakmpd-flags-Kv.txt",
                                     "derived-get-isakmpd-flags-cluster.txt",
                                     "get-isakmpd-flags.txt"])
def test_rcctl_samples_set_K(fixture: str) -> None:
    opts = parse_flags(flags_of(fixture))
    assert has_option(opts, "K")


def test_Kv_sample_sets_both_letters() -> None:
    opts = parse_flags(flags_of("derived-get-isakmpd-flags-Kv.txt"))
    assert opts.options == (("K", ""), ("v", ""))
    assert parse_flags(flags_of("derived-get-isakmpd-flags-cluster.txt")).options == \
        (("K", ""), ("v", ""))


def test_vfK_is_a_fifo_named_K_not_dash_K() -> None:
    opts = parse_flags("-vfK")
    assert opts.options == (("v", ""), ("f", "K"))
    assert not has_option(opts, "K")
    assert opts.argument("f") == "K"


def test_argument_in_next_word_and_glued() -> None:
    opts = parse_flags("-K -f /var/run/isakmpd.fifo -DA=10 -v")
    assert opts.options == (("K", ""), ("f", "/var/run/isakmpd.fifo"), ("D", "A=10"),
                            ("v", ""))
    # An option argument that looks like a flag is still the argument.
    assert parse_flags("-c -K").options == (("c", "-K"),)
    assert not has_option(parse_flags("-c -K"), "K")


def test_double_dash_ends_options_and_empty_flags() -> None:
    assert parse_flags("-K --").options == (("K", ""),)
    assert parse_flags("").options == ()
    assert not has_option(parse_flags(""), "K")


@pytest.mark.parametrize("flags, reason", [
    ("-x", "no option -x"),
    ("-Kx", "no option -x"),
    ("-K -f", "needs an argument"),
    ("-vD", "needs an argument"),
    ("-K extra", "not an option"),
    ("-- -K", "not an option"),
    ("-K -", "not an option"),
])
def test_bad_flags_raise_naming_the_flags(flags: str, reason: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_flags(flags)
    assert reason in str(exc.value)
    assert flags.strip()[:20] in str(exc.value)


def test_passive_connections() -> None:
    one = "from-192.0.2.1=17-to-0.0.0.0/0=17:1701\n"
    assert parse_passive_connections(one) == ("from-192.0.2.1=17-to-0.0.0.0/0=17:1701",)
    two = "from-192.0.2.1=17-to-0.0.0.0/0=17:1701,from-2001:db8::1=17-to-::/0=17:1701\n"
    assert len(parse_passive_connections(two)) == 2
    assert parse_passive_connections("") == ()


@pytest.mark.parametrize("text", ["from-a-to-b", "a\nb\n", ",\n", "name with blank\n"])
def test_passive_connections_garbage_raises(text: str) -> None:
    with pytest.raises(ParseError):
        parse_passive_connections(text)


def test_phase1_default() -> None:
    assert parse_phase1_default("peer-default\n") == "peer-default"
    assert parse_phase1_default("Default-phase-1\n") == "Default-phase-1"
    assert parse_phase1_default("") is None
    with pytest.raises(ParseError):
        parse_phase1_default("two\nlines\n")
