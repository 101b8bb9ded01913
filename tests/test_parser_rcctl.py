"""Tests of parsers/rcctl.py against the rcctl samples and rcctl.sh / rc.subr's formats."""

from __future__ import annotations

import pytest

from conftest import SAMPLES, sample_files, sample_id
from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.rcctl import (
    DaemonAction,
    DaemonCheck,
    DaemonFlags,
    RcService,
    is_permission_error,
    parse_action,
    parse_check,
    parse_get,
    parse_get_flags,
    parse_ls,
    special_enabled,
)

SAMPLE_FILES = sample_files("rcctl/**/*.txt", "derived/rcctl/*.txt", "derived2/rcctl/*.txt")

LS_ON = ("check_quotas", "cron", "dhcpleased", "ipsec", "isakmpd", "library_aslr", "npppd",
         "ntpd", "pf", "pflogd", "resolvd", "slaacd", "smtpd", "sndiod", "sshd", "syslogd")
NPPPD_GET = RcService("npppd", (("class", "daemon"), ("execdir", ""), ("flags", ""),
                                ("logger", ""), ("rtable", "0"), ("timeout", "30"),
                                ("user", "root")), "", True)
SPECIAL_STDERR = 'rcctl: "pf" is a special variable, no rc.d(8) script\n'


def _reason(parse):
    def run(text):
        with pytest.raises(ParseError) as e:
            parse(text)
        return e.value.reason
    return run


# Each sample: how the agent parses it (with the exit status rcctl gives it), and the result.
EXPECTED = {
    "derived/rcctl/check-npppd-ok.txt": (
        lambda t: parse_check(t, "", 0, "npppd"), DaemonCheck("npppd", True)),
    "derived/rcctl/check-npppd-failed.txt": (
        lambda t: parse_check(t, "", 1, "npppd"), DaemonCheck("npppd", False)),
    "derived/rcctl/check-pf-special-stderr.txt": (
        _reason(lambda t: parse_check("", t, 1, "pf")),
        ("pf is a special service, not a daemon: rcctl has no rc.d(8) script to check "
        "(see `rcctl ls on`)")),
    "derived/rcctl/get-ipsec.txt": (
        lambda t: parse_get(t, "ipsec"), RcService("ipsec", (("flags", "YES"),), None, True)),
    "derived/rcctl/get-isakmpd-flags.txt": (
        lambda t: parse_get_flags(t, 0, "isakmpd"), DaemonFlags("isakmpd", True, "-K")),
    "derived/rcctl/get-npppd-enabled-default-flags.txt": (
        lambda t: parse_get(t, "npppd"), NPPPD_GET),
    "derived/rcctl/get-pf-flags.txt": (
        lambda t: parse_get_flags(t, 0, "pf"), DaemonFlags("pf", True, "")),
    "derived/rcctl/ls-failed-2.txt": (
        lambda t: parse_ls(t, "rcctl ls failed"), ("isakmpd", "npppd")),
    "derived/rcctl/ls-on-vpn-host-7x.txt": (parse_ls, LS_ON),
    "rcctl/real/oams63-rcctl-restart-ntpd.txt": (
        lambda t: parse_action(t, "rcctl restart ntpd"), (DaemonAction("ntpd", "ok"),)),
    "rcctl/real/oams63-rcctl-restart-sshd.txt": (
        lambda t: parse_action(t, "rcctl restart sshd"),
        (DaemonAction("sshd", "ok"), DaemonAction("sshd", "ok"))),
    "rcctl/real/oams63-rcctl-stop-sndiod.txt": (
        lambda t: parse_action(t, "rcctl stop sndiod"), (DaemonAction("sndiod", "ok"),)),
    # derived2/: flags as typed (two words, or one getopt cluster) come back verbatim;
    # judging whether they hold -K is the check's job, not the parser's.
    "derived2/rcctl/derived-get-isakmpd-flags-Kv.txt": (
        lambda t: parse_get_flags(t, 0, "isakmpd"), DaemonFlags("isakmpd", True, "-K -v")),
    "derived2/rcctl/derived-get-isakmpd-flags-cluster.txt": (
        lambda t: parse_get_flags(t, 0, "isakmpd"), DaemonFlags("isakmpd", True, "-Kv")),
    # Kept in the order printed (this sample has ntpd before npppd, which `sort` would not
    # print; the parser does not reorder).
    "derived2/rcctl/derived-ls-on-7x-many.txt": (parse_ls, (
        "check_quotas", "cron", "ipsec", "isakmpd", "library_aslr", "ntpd", "npppd", "pf",
        "pflogd", "slaacd", "smtpd", "sndiod", "sshd", "syslogd")),
}


def test_every_sample_has_expectations():
    assert SAMPLE_FILES, f"no samples under {SAMPLES}"
    assert {sample_id(p) for p in SAMPLE_FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=sample_id)
def test_sample(path):
    parse, expected = EXPECTED[sample_id(path)]
    assert parse(path.read_text()) == expected


# ls -----------------------------------------------------------------------

def test_special_services_from_ls_on():
    ls_on = parse_ls((SAMPLES / "derived/rcctl/ls-on-vpn-host-7x.txt").read_text())
    assert special_enabled(ls_on, "ipsec") is True
    assert special_enabled(ls_on, "pf") is True
    assert special_enabled(ls_on, "spamd_black") is False
    with pytest.raises(ValueError):
        special_enabled(ls_on, "npppd")


def test_ls_empty_is_no_service():
    # `rcctl ls failed` with nothing failed prints nothing (and exits 0).
    assert parse_ls("", "rcctl ls failed") == ()


@pytest.mark.parametrize("stdout", [
    'rcctl: "ls failed" needs root privileges\n',      # needs_root text in stdout
    "isakmpd npppd\n",
    "npppd\n\n",
    "npppd(ok)\n",
    "usage:\trcctl get|getdef|set daemon|service [variable [argument ...]]\n",
])
def test_ls_refuses_garbage(stdout):
    with pytest.raises(ParseError) as e:
        parse_ls(stdout, "rcctl ls failed")
    assert e.value.command == "rcctl ls failed"


# get NAME flags -------------------------------------------------------------

@pytest.mark.parametrize("stdout, returncode, daemon, expected", [
    ("", 0, "npppd", DaemonFlags("npppd", True, "")),          # empty flags print nothing
    ("NO\n", 0, "npppd", DaemonFlags("npppd", False, "")),     # disabled: exit 0 (L328)
    ("NO\n", 1, "npppd", DaemonFlags("npppd", False, "")),
    ("-K -v\n", 0, "isakmpd", DaemonFlags("isakmpd", True, "-K -v")),
    ("NO\n", 0, "pf", DaemonFlags("pf", False, "")),
    ("YES\n", 0, "ipsec", DaemonFlags("ipsec", True, "")),
])
def test_get_flags(stdout, returncode, daemon, expected):
    assert parse_get_flags(stdout, returncode, daemon) == expected


@pytest.mark.parametrize("stdout, returncode, daemon", [
    ("", 2, "nosuchd"),                   # rcctl_err "service nosuchd does not exist" 2
    ("", 1, "npppd"),                     # an error went to stderr
    ("-K\n", 1, "isakmpd"),
    ("-K\n-v\n", 0, "isakmpd"),
    ('rcctl: "get" needs root privileges\n', 0, "npppd"),
    ("/etc/rc.d/npppd: need root privileges\n", 0, "npppd"),
    ("-K\n", 0, "pf"),                    # a special service is YES or NO
])
def test_get_flags_refuses(stdout, returncode, daemon):
    with pytest.raises(ParseError) as e:
        parse_get_flags(stdout, returncode, daemon)
    assert e.value.command == f"rcctl get {daemon} flags"


# get NAME -------------------------------------------------------------------

def test_get_disabled_daemon():
    text = ("npppd_class=daemon\nnpppd_execdir=\nnpppd_flags=NO\nnpppd_logger=\n"
            "npppd_rtable=0\nnpppd_timeout=30\nnpppd_user=root\n")
    s = parse_get(text, "npppd")
    assert (s.enabled, s.flags, s.get("flags"), s.get("timeout")) == (False, "", "NO", "30")


def test_get_older_release_without_execdir_and_logger():
    text = "isakmpd_class=daemon\nisakmpd_flags=-K\nisakmpd_rtable=0\n" \
           "isakmpd_timeout=30\nisakmpd_user=root\n"
    s = parse_get(text, "isakmpd")
    assert (s.enabled, s.flags, s.get("execdir"), s.unknown_lines) == (True, "-K", None, 0)


def test_get_counts_an_unknown_variable():
    text = (SAMPLES / "derived/rcctl/get-npppd-enabled-default-flags.txt").read_text()
    s = parse_get(text + "npppd_newthing=1\n", "npppd")
    assert s.unknown_lines == 1 and s.values == NPPPD_GET.values


def test_get_special_off():
    assert parse_get("pf=NO\n", "pf") == RcService("pf", (("flags", "NO"),), None, False)


@pytest.mark.parametrize("stdout, daemon", [
    ("", "npppd"),
    ((SAMPLES / "derived/rcctl/get-npppd-enabled-default-flags.txt").read_text()
     .replace("npppd_flags=", "npppd_flagz="), "npppd"),                 # renamed field
    ("isakmpd_flags=-K\n", "npppd"),                                     # other daemon
    ("npppd_flags\n", "npppd"),
    ("ipsec=MAYBE\n", "ipsec"),
    ("ipsec=YES\npf=YES\n", "ipsec"),
    ('rcctl: "pf" is a special variable, cannot "get class"\n', "pf"),
])
def test_get_refuses(stdout, daemon):
    with pytest.raises(ParseError):
        parse_get(stdout, daemon)


# check ----------------------------------------------------------------------

def test_check_quiet():
    # `rcctl -q check npppd`: _rc_exit prints nothing for ok (rc.subr L142).
    assert parse_check("", "", 0, "npppd") == DaemonCheck("npppd", True)
    assert parse_check("npppd(failed)\n", "", 1, "npppd") == DaemonCheck("npppd", False)


@pytest.mark.parametrize("stdout, stderr, returncode, words", [
    ("npppd(ok)\n", "", 1, "exit status 1"),
    ("npppd(failed)\n", "", 0, "exit status 0"),
    ("isakmpd(ok)\n", "", 0, "expected `npppd(ok)`"),
    ("npppd(killed)\n", "", 0, "expected `npppd(ok)`"),
    ("npppd(okay)\n", "", 0, "expected `npppd(ok)`"),
    ("npppd(ok)\nnpppd(ok)\n", "", 0, "expected one line"),
    ("", "/etc/rc.d/npppd: need root privileges\n", 1, "permission denied"),
    ("", 'rcctl: "check" needs root privileges\n', 1, "permission denied"),
    ("/etc/rc.d/npppd: need root privileges\n", "", 1, "expected `npppd(ok)`"),
    ("", "", 1, "no output"),
    ("", "rcctl: service npppd does not exist\n", 2, "no output, exit status 2"),
])
def test_check_refuses(stdout, stderr, returncode, words):
    with pytest.raises(ParseError) as e:
        parse_check(stdout, stderr, returncode, "npppd")
    assert e.value.command == "rcctl check npppd"
    assert words in e.value.reason


def test_check_special_service_from_the_sample():
    stderr = (SAMPLES / "derived/rcctl/check-pf-special-stderr.txt").read_text()
    assert stderr == SPECIAL_STDERR
    with pytest.raises(ParseError) as e:
        parse_check("", stderr, 1, "pf")
    assert "special service" in e.value.reason


@pytest.mark.parametrize("stderr, expected", [
    ('rcctl: "enable" needs root privileges\n', True),       # rcctl.sh rev 1.122 L43
    ('rcctl: "ls failed" needs root privileges\n', True),    # L632
    ("rcctl enable: need root privileges\n", True),           # rev 1.39 (2014)
    ("/etc/rc.d/npppd: need root privileges\n", True),        # rc.subr rev 1.166 L221
    (SPECIAL_STDERR, False),
    ("", False),
])
def test_is_permission_error(stderr, expected):
    assert is_permission_error(stderr) is expected


# start / stop / restart -----------------------------------------------------

def test_action_results():
    got = parse_action("npppd(killed)\nisakmpd(timeout)\nsshd(failed)\n\n", "rcctl stop")
    assert got == (DaemonAction("npppd", "killed"), DaemonAction("isakmpd", "timeout"),
                   DaemonAction("sshd", "failed"))
    assert [a.succeeded for a in got] == [True, False, False]
    assert parse_action("", "rcctl start npppd") == ()      # already running


@pytest.mark.parametrize("stdout", [
    "sshd(okay)\n", "sshd\n", "/etc/rc.d/sshd: need root privileges\n",
    "sshd(ok) sshd(ok)\n"])
def test_action_refuses(stdout):
    with pytest.raises(ParseError) as e:
        parse_action(stdout, "rcctl restart sshd")
    assert e.value.lineno == 1
