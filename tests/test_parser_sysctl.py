"""Tests of parsers/sysctl.py against the sysctl samples, sysctl.c's formats and sysctl.conf(5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import SAMPLES, sample_files, sample_id
from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.sysctl import (
    SysctlChange,
    SysctlConfEntry,
    SysctlReading,
    parse_conf,
    parse_get,
    parse_set,
    parse_value,
    set_conf_value,
)

SAMPLE_FILES = sample_files("sysctl/**/*.txt", "derived/sysctl/*.txt",
                            "derived2/sysctl/*.txt")
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sysctl"
EXAMPLE_CONF = (FIXTURES / "examples-sysctl.conf").read_text()

# Each sample: the parser its command needs, and what it must return.
EXPECTED = {
    "derived/sysctl/get-ip-forwarding.txt": (
        parse_get, SysctlReading((("net.inet.ip.forwarding", "1"),), (), ())),
    "derived/sysctl/get-pipex-enable.txt": (
        parse_get, SysctlReading((("net.pipex.enable", "1"),), (), ())),
    "derived/sysctl/get-n-pipex-enable.txt": (parse_value, "1"),
    "derived/sysctl/set-ip-forwarding.txt": (
        parse_set, (SysctlChange("net.inet.ip.forwarding", "0", "1"),)),
    "derived/sysctl/set-pipex-enable.txt": (
        parse_set, (SysctlChange("net.pipex.enable", "0", "1"),)),
    "sysctl/real/oams63-sysctl-set-timecounter.txt": (
        parse_set, (SysctlChange("kern.timecounter.hardware", "i8254", "tsc"),)),
    # stderr samples: sysctl printed nothing on stdout.
    "derived/sysctl/unknown-third-level-stderr.txt": (
        lambda text: parse_get("", text), SysctlReading((), ("net.inet.ip.nosuch",), ())),
    "derived/sysctl/unknown-top-level-stderr.txt": (
        lambda text: parse_get("", text), SysctlReading((), ("foo.bar",), ())),
    # derived2/: both names the agent reads, in one `sysctl A B` call.
    "derived2/sysctl/derived-get-forwarding-pipex.txt": (
        parse_get, SysctlReading((("net.inet.ip.forwarding", "1"), ("net.pipex.enable", "1")),
                                 (), ())),
}


def test_every_sample_has_expectations():
    assert SAMPLE_FILES, f"no samples under {SAMPLES}"
    assert {sample_id(p) for p in SAMPLE_FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=sample_id)
def test_sample(path):
    parse, expected = EXPECTED[sample_id(path)]
    assert parse(path.read_text()) == expected


def test_get_several_names_with_unknown_ones():
    # One call for all names, as commands.sysctl_command() runs it.
    out = (SAMPLES / "derived/sysctl/get-ip-forwarding.txt").read_text() + \
        (SAMPLES / "derived/sysctl/get-pipex-enable.txt").read_text()
    err = (SAMPLES / "derived/sysctl/unknown-third-level-stderr.txt").read_text()
    r = parse_get(out, err)
    assert r.get("net.inet.ip.forwarding") == "1"
    assert r.get("net.pipex.enable") == "1"
    assert r.get("net.inet.ip.nosuch") is None
    assert r.unknown == ("net.inet.ip.nosuch",)
    assert r.errors == ()


def test_get_stderr_kinds():
    # warnx() texts of sysctl.c rev 1.268: findname(), sysctl_forkstat(), parse().
    err = ("sysctl: second level name nosuch in net.nosuch is invalid\n"
           "sysctl: fourth level name in kern.forkstat.forks.x is invalid\n"
           "sysctl: name x in net.inet.ip.forwarding.x is unknown\n"
           "sysctl: kern.somaxconn: value is not available\n"
           "sysctl: net.inet: specification is incomplete\n")
    r = parse_get("", err)
    assert r.unknown == ("net.nosuch", "kern.forkstat.forks.x", "net.inet.ip.forwarding.x")
    assert r.errors == ("sysctl: kern.somaxconn: value is not available",
                        "sysctl: net.inet: specification is incomplete")


def test_get_string_value_over_several_lines():
    # parse() puts() a string value; one holding "\n    " (kern.version's
    # shape) goes on over an indented line and puts() adds a last newline.
    out = "kern.version=first part\n    second part\n\nkern.ostype=OpenBSD\n"
    r = parse_get(out)
    assert r.get("kern.version") == "first part\n    second part"
    assert r.get("kern.ostype") == "OpenBSD"


@pytest.mark.parametrize("stdout", [
    "sysctl: net.inet.ip.forwarding: Operation not permitted\n",   # stderr text in stdout
    "net.pipex.enable: 0 -> 1\n",                                  # a write, not a read
    "hello world\n",
    "    indented first line\n",
    "net.inet.ip.forwarding 1\n",
])
def test_get_refuses_garbage(stdout):
    with pytest.raises(ParseError) as e:
        parse_get(stdout)
    assert e.value.command == "sysctl" and e.value.lineno == 1


@pytest.mark.parametrize("stdout", [
    "net.inet.ip.forwarding=1\n",          # a read
    "net.pipex.enable: 0 => 1\n",          # renamed arrow
    "net.pipex.enable 0 -> 1\n",
    "sysctl: net.pipex.enable: Operation not permitted\n",
])
def test_set_refuses_other_lines(stdout):
    with pytest.raises(ParseError):
        parse_set(stdout, "sysctl net.pipex.enable=1")


def test_set_empty_is_no_change():
    assert parse_set("") == ()


@pytest.mark.parametrize("stdout", ["", "1\n0\n", "sysctl: top level name x in x.y is invalid\n"])
def test_value_refuses(stdout):
    with pytest.raises(ParseError):
        parse_value(stdout)


# sysctl.conf(5) ------------------------------------------------------------

def _uncomment(text: str, *names: str) -> str:
    for name in names:
        text = text.replace(f"#{name}=", f"{name}=", 1)
    return text


def test_conf_example_file_sets_nothing():
    conf = parse_conf(EXAMPLE_CONF)
    assert conf.entries == ()
    assert conf.get("net.pipex.enable") is None


def test_conf_uncommented_example_lines():
    conf = parse_conf(_uncomment(EXAMPLE_CONF, "net.inet.ip.forwarding", "net.pipex.enable"))
    assert conf.entries == (SysctlConfEntry("net.inet.ip.forwarding", "1", 7),
                            SysctlConfEntry("net.pipex.enable", "1", 24))
    assert conf.path == "/etc/sysctl.conf"
    assert conf.get("net.inet.ip.forwarding") == "1"


def test_conf_last_assignment_wins_and_blanks_around_line_are_fine():
    text = "net.pipex.enable=1\n\n  net.pipex.enable=0  # later line wins\nddb.panic=0\n"
    conf = parse_conf(text)
    assert [e.lineno for e in conf.entries] == [1, 3, 4]
    assert conf.get("net.pipex.enable") == "0"
    assert conf.get("ddb.panic") == "0"


@pytest.mark.parametrize("line, words", [
    ("net.inet.ip.forwarding = 1", "blank around"),
    ("net.inet.ip.forwarding= 1", "blank around"),
    ("net.inet.ip.forwarding", "not a `name=value`"),
    ("net.inet.ip.forwarding=", "no value"),
    ("net.inet.ip.forwarding=1\r", "carriage return"),
    ("kern.somestring=a b", "blank inside"),
    ("forwarding=1", "not a sysctl name"),
    ("net/inet/ip=1", "not a sysctl name"),
])
def test_conf_malformed_line_names_path_and_line(line, words):
    text = f"# comment\nddb.panic=0\n{line}\n"
    with pytest.raises(ParseError) as e:
        parse_conf(text, "/etc/sysctl.conf")
    assert e.value.command == "/etc/sysctl.conf"
    assert e.value.lineno == 3
    assert words in e.value.reason


def test_set_conf_value_appends_when_only_commented():
    new = set_conf_value(EXAMPLE_CONF, "net.pipex.enable", "1")
    assert new == EXAMPLE_CONF + "net.pipex.enable=1\n"
    assert "#net.pipex.enable=1\t\t# 1=Enable pipex(4) for npppd(8)\n" in new
    assert parse_conf(new).get("net.pipex.enable") == "1"


def test_set_conf_value_appends_after_a_missing_final_newline():
    assert set_conf_value("ddb.panic=0", "net.pipex.enable", "1") == \
        "ddb.panic=0\nnet.pipex.enable=1\n"
    assert set_conf_value("", "net.pipex.enable", "1") == "net.pipex.enable=1\n"


def test_set_conf_value_rewrites_in_place_keeping_comment():
    text = _uncomment(EXAMPLE_CONF, "net.inet.ip.forwarding").replace(
        "net.inet.ip.forwarding=1\t", "net.inet.ip.forwarding=0\t")
    new = set_conf_value(text, "net.inet.ip.forwarding", "1")
    assert new == text.replace("net.inet.ip.forwarding=0\t", "net.inet.ip.forwarding=1\t")
    assert parse_conf(new).get("net.inet.ip.forwarding") == "1"


def test_set_conf_value_replaces_only_the_last_duplicate():
    text = "net.pipex.enable=1\n  net.pipex.enable=0 # oops\n#net.pipex.enable=0\n"
    new = set_conf_value(text, "net.pipex.enable", "1")
    assert new == "net.pipex.enable=1\n  net.pipex.enable=1 # oops\n#net.pipex.enable=0\n"


def test_set_conf_value_is_idempotent():
    text = "net.pipex.enable=1 # keep\n"
    assert set_conf_value(text, "net.pipex.enable", "1") is text


@pytest.mark.parametrize("name, value", [
    ("net.pipex.enable", "1 # x"), ("net.pipex.enable", ""), ("net.pipex.enable", "a\nb"),
    ("pipex", "1"), ("net.pipex.enable=1", "1")])
def test_set_conf_value_refuses_bad_arguments(name, value):
    with pytest.raises(ValueError):
        set_conf_value("", name, value)


def test_set_conf_value_refuses_a_file_it_cannot_read():
    with pytest.raises(ParseError):
        set_conf_value("net.pipex.enable = 0\n", "net.pipex.enable", "1")


_conf_line = st.one_of(
    st.just(""), st.just("# a comment"), st.just("#net.pipex.enable=1\t# commented"),
    st.builds(lambda n, v, c: f"{n}={v}{c}",
              st.sampled_from(["net.pipex.enable", "net.inet.ip.forwarding", "ddb.panic"]),
              st.sampled_from(["0", "1", "42"]), st.sampled_from(["", "\t# why", " "])))


@given(st.lists(_conf_line, max_size=8), st.sampled_from(["0", "1"]), st.booleans())
def test_set_conf_value_property(lines, value, final_newline):
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    new = set_conf_value(text, "net.pipex.enable", value)
    assert parse_conf(new).get("net.pipex.enable") == value
    # Every other name keeps its value, and no line but one changes or is added.
    old_conf, new_conf = parse_conf(text), parse_conf(new)
    for name in ("net.inet.ip.forwarding", "ddb.panic"):
        assert new_conf.get(name) == old_conf.get(name)
    old_lines, new_lines = text.split("\n"), new.split("\n")
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
    assert len(changed) <= 1
    assert new.startswith(text) or len(new_lines) == len(old_lines)
