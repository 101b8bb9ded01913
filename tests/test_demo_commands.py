"""Admin and repair commands on the demo host: answers, changes, errors, privileges.

Expected texts come from the OpenBSD source the handlers cite (pfctl.c rev
1.397, ipsecctl.c rev 1.88 and parse.y, rcctl.sh rev 1.122, rc.subr rev 1.129,
sysctl.c, ifconfig.c rev 1.476, npppctl.c rev 1.10, ike.c, pfkey.c).
"""

from __future__ import annotations

import pytest

from obsdvpn_agent import commands as table
from obsdvpn_agent.host.demo import DemoHost

NOW = 1_714_570_000.0
SYSCTL, RCCTL, PFCTL, IPSECCTL, IFCONFIG, NPPPCTL = (
    table.SYSCTL, table.RCCTL, table.PFCTL, table.IPSECCTL, table.IFCONFIG, table.NPPPCTL)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def host(tmp_path, clock) -> DemoHost:
    return DemoHost(tmp_path / "state.json", clock=clock)


@pytest.fixture
def user_host(host, tmp_path, clock) -> DemoHost:
    host.info()  # create the healthy state as root first
    return DemoHost(tmp_path / "state.json", as_root=False, clock=clock)


def run(host, *argv):
    return host.run(argv, timeout_s=5)


# --- every command the agent runs is answered -----------------------------------

def agent_argvs():
    argvs = [c.argv for c in (table.RCCTL_LS_ON, table.PFCTL_INFO, table.PFCTL_RULES,
                              table.PFCTL_LIMITS, table.PFCTL_CONFIG, table.IPSECCTL_SA,
                              table.IFCONFIG_PPPX, table.NPPPCTL_SESSIONS)]
    argvs.append(table.sysctl_command(("net.inet.ip.forwarding", "net.pipex.enable")).argv)
    for daemon in ("isakmpd", "npppd", "ipsec", "pf"):
        argvs.append(table.rcctl_flags_command(daemon).argv)
    for daemon in ("isakmpd", "npppd"):
        argvs.append(table.rcctl_check_command(daemon).argv)
    fill = {"name": "net.inet.ip.forwarding", "value": "1", "daemon": "npppd",
            "flags": "-K"}
    argvs.extend(tuple(a.format(**fill) for a in t) for t in table.REPAIR_ARGV_TEMPLATES)
    return argvs


@pytest.mark.parametrize("argv", agent_argvs(), ids=" ".join)
def test_every_agent_command_is_modelled(host, argv):
    result = host.run(argv, 5)
    assert result.returncode in (0, 1)
    assert "demo:" not in result.stderr
    assert result.argv == tuple(argv)


@pytest.mark.parametrize("argv", agent_argvs(), ids=" ".join)
def test_healthy_host_answers_the_agent_without_error(host, argv):
    result = host.run(argv, 5)
    if argv[:2] == (PFCTL, "-e"):
        assert (result.returncode, result.stderr) == (1, "pfctl: pf already enabled\n")
    else:
        assert (result.returncode, result.stderr) == (0, "")


def test_unmodelled_command_exits_127(host):
    result = run(host, "/bin/ls", "-l")
    assert result.returncode == 127
    assert result.stderr == "demo: command not modelled by the demo host: /bin/ls -l\n"
    assert run(host, PFCTL, "-ss").returncode == 127


def test_bare_command_names_work(host):
    assert run(host, "sysctl", "net.pipex.enable").stdout == "net.pipex.enable=1\n"


# --- pfctl --------------------------------------------------------------------

BROKEN_PF_CONF = ('ext_if = "vio0"\npass\npass in on $ext_if proto tcp to port ssh\n'
                  "bogus rule here\n")


def test_pfctl_f_with_syntax_error_keeps_the_old_ruleset(host):
    before = run(host, PFCTL, "-sr").stdout
    host.write_file(table.PF_CONF, BROKEN_PF_CONF, 0o600)
    result = run(host, PFCTL, "-f", table.PF_CONF)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == ("/etc/pf.conf:4: syntax error\n"
                             "pfctl: Syntax error in config file: pf rules not loaded\n")
    assert run(host, PFCTL, "-sr").stdout == before


def test_pfctl_nvf_prints_macros_first_and_no_rules_on_error(host):
    host.write_file(table.PF_CONF, BROKEN_PF_CONF, 0o600)
    result = run(host, PFCTL, "-nvf", table.PF_CONF)
    assert (result.returncode, result.stdout) == (1, 'ext_if = "vio0"\n')
    assert result.stderr == "/etc/pf.conf:4: syntax error\n"
    quiet = run(host, PFCTL, "-nf", table.PF_CONF)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (
        1, "", "/etc/pf.conf:4: syntax error\n")


def test_pfctl_nvf_then_f_loads_what_it_printed(host):
    host.write_file(table.PF_CONF, BROKEN_PF_CONF.replace("bogus rule here\n", ""), 0o600)
    shown = run(host, PFCTL, "-nvf", table.PF_CONF)
    assert shown.stdout == ('ext_if = "vio0"\npass all flags S/SA\n'
                            "pass in on vio0 proto tcp from any to any port = 22 flags S/SA\n")
    assert run(host, PFCTL, "-f", table.PF_CONF).returncode == 0
    assert run(host, PFCTL, "-sr").stdout == shown.stdout.split("\n", 1)[1]


def test_pfctl_missing_file(host):
    result = run(host, PFCTL, "-f", "/etc/nosuch.conf")
    assert result.returncode == 1
    assert result.stderr == ("pfctl: /etc/nosuch.conf: No such file or directory\n"
                             "pfctl: cannot open the main config file!: No such file or "
                             "directory\n"
                             "pfctl: Syntax error in config file: pf rules not loaded\n")


def test_pfctl_enable_disable_and_runtime(host, clock):
    assert run(host, PFCTL, "-e").stderr == "pfctl: pf already enabled\n"
    disabled = run(host, PFCTL, "-d")
    assert (disabled.returncode, disabled.stderr) == (0, "pf disabled\n")
    assert run(host, PFCTL, "-d").stderr == "pfctl: pf not enabled\n"
    clock.now += 65
    info = run(host, PFCTL, "-si").stdout
    assert info.startswith("Status: Disabled for 0 days 00:01:05       ")
    enabled = run(host, PFCTL, "-e")
    assert (enabled.returncode, enabled.stderr) == (0, "pf enabled\n")
    assert run(host, PFCTL, "-si").stdout.startswith(f"{'Status: Enabled':<44}")


def test_pf_counters_stop_while_disabled(host, clock):
    run(host, PFCTL, "-d")
    first = run(host, PFCTL, "-si").stdout
    clock.now += 600
    later = run(host, PFCTL, "-si").stdout
    searches = [line.split()[1] for t in (first, later) for line in t.splitlines()
                if line.startswith("  searches")]
    assert searches[0] == searches[1]


def test_pfctl_flush_rules(host):
    result = run(host, PFCTL, "-F", "rules")
    assert (result.returncode, result.stderr) == (0, "rules cleared\n")
    assert run(host, PFCTL, "-sr").stdout == ""
    assert run(host, PFCTL, "-Fr").stderr == "rules cleared\n"
    assert run(host, PFCTL, "-f", table.PF_CONF).returncode == 0
    assert "nat-to (vio0) round-robin" in run(host, PFCTL, "-sr").stdout


def test_pfctl_unknown_modifier(host):
    result = run(host, PFCTL, "-s", "nosuch")
    assert result.returncode == 1
    assert result.stderr.startswith("pfctl: Unknown show modifier 'nosuch'\nusage: pfctl ")


def test_pfctl_set_limit_changes_sm(host):
    text = host.read_file(table.PF_CONF) + "set limit states 20000\n"
    host.write_file(table.PF_CONF, text, 0o600)
    assert run(host, PFCTL, "-f", table.PF_CONF).returncode == 0
    assert "states        hard limit    20000\n" in run(host, PFCTL, "-sm").stdout


# --- rcctl / rc.subr ---------------------------------------------------------------

def test_rcctl_stop_start_isakmpd_and_the_ike_policy(host):
    assert run(host, IPSECCTL, "-sf").stdout != ""
    assert run(host, RCCTL, "stop", "isakmpd").stdout == "isakmpd(ok)\n"
    assert run(host, RCCTL, "stop", "isakmpd").stdout == ""  # rc_check fails: exit 0
    assert run(host, IPSECCTL, "-sa").stdout == "FLOWS:\nNo flows\n\nSAD:\nNo entries\n"
    assert run(host, NPPPCTL, "session", "brief").stdout == ""
    assert run(host, RCCTL, "start", "isakmpd").stdout == "isakmpd(ok)\n"
    assert run(host, RCCTL, "start", "isakmpd").stdout == ""  # already running
    with host.store.change() as state:
        assert state["ike_loaded"] is False  # isakmpd forgot ipsecctl's policy
    assert run(host, IPSECCTL, "-f", table.IPSEC_CONF).returncode == 0
    with host.store.change() as state:
        assert state["ike_loaded"] is True


def test_rcctl_restart_prints_stop_and_start(host):
    assert run(host, RCCTL, "restart", "npppd").stdout == "npppd(ok)\nnpppd(ok)\n"


def test_rcctl_start_disabled_daemon_needs_f(host):
    result = run(host, RCCTL, "start", "iked")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "/etc/rc.d/iked: need -f to force start since iked_flags=NO\n"
    forced = run(host, RCCTL, "-f", "start", "iked")
    assert (forced.returncode, forced.stdout) == (0, "iked(ok)\n")


def test_rcctl_unknown_service_and_special(host):
    missing = run(host, RCCTL, "check", "nosuchd")
    assert (missing.returncode, missing.stderr) == (2, "rcctl: service nosuchd does not exist\n")
    special = run(host, RCCTL, "start", "pf")
    assert special.stderr == 'rcctl: "pf" is a special variable, no rc.d(8) script\n'
    assert run(host, RCCTL, "get", "pf", "class").stderr == \
        'rcctl: "pf" is a special variable, cannot "get class"\n'


def test_rcctl_enable_set_disable_edit_rc_conf_local(host):
    assert run(host, RCCTL, "set", "isakmpd", "flags", "-K", "-v").returncode == 0
    assert host.read_file("/etc/rc.conf.local") == \
        "ipsec=YES\nisakmpd_flags=-K -v\nnpppd_flags=\n"
    assert run(host, RCCTL, "disable", "isakmpd").returncode == 0
    assert host.read_file("/etc/rc.conf.local") == "ipsec=YES\nnpppd_flags=\n"
    assert run(host, RCCTL, "get", "isakmpd", "flags").stdout == "NO\n"
    unset = run(host, RCCTL, "set", "isakmpd", "flags", "-K")
    assert (unset.returncode, unset.stderr) == (1, "rcctl: isakmpd is not enabled\n")
    assert run(host, RCCTL, "enable", "isakmpd").returncode == 0  # flags come back empty
    assert run(host, RCCTL, "get", "isakmpd", "flags").stdout == ""
    assert run(host, RCCTL, "set", "isakmpd", "flags", "-K").returncode == 0
    assert run(host, RCCTL, "get", "isakmpd", "flags").stdout == "-K\n"
    assert run(host, RCCTL, "disable", "ipsec").returncode == 0
    assert run(host, RCCTL, "get", "ipsec").stdout == "ipsec=NO\n"
    assert run(host, RCCTL, "get", "ipsec").returncode == 1
    run(host, RCCTL, "disable", "sshd")  # a base daemon on by default: sshd_flags=NO
    assert "sshd_flags=NO\n" in host.read_file("/etc/rc.conf.local")
    assert "sshd" not in run(host, RCCTL, "ls", "on").stdout.split()


def test_isakmpd_without_K_dies_after_rc_says_ok(host):
    """No -K: isakmpd reads the missing isakmpd.policy and exits after daemon()."""
    run(host, RCCTL, "set", "isakmpd", "flags", "")
    assert run(host, RCCTL, "restart", "isakmpd").stdout == "isakmpd(ok)\nisakmpd(ok)\n"
    check = run(host, RCCTL, "check", "isakmpd")
    assert (check.returncode, check.stdout) == (1, "isakmpd(failed)\n")
    assert run(host, RCCTL, "ls", "failed").stdout == "isakmpd\n"


def test_processes_show_isakmpd_monitor_title_and_child_flags(host):
    procs = [p for p in host.processes() if p.name == "isakmpd"]
    assert [p.cmdline for p in procs] == [("isakmpd: monitor [priv]",),
                                          ("/sbin/isakmpd", "-K")]
    assert [p.cmdline for p in host.processes() if p.name == "npppd"] == [("npppd: main",)]


# --- ipsecctl -------------------------------------------------------------------

def test_ipsecctl_f_without_isakmpd(host):
    run(host, RCCTL, "stop", "isakmpd")
    result = run(host, IPSECCTL, "-f", table.IPSEC_CONF)
    assert result.returncode == 1
    assert result.stderr == ("ipsecctl: ike_ipsec_establish: "
                             "open(/var/run/isakmpd.fifo): No such file or directory\n")
    assert run(host, IPSECCTL, "-nf", table.IPSEC_CONF).returncode == 0


def test_ipsecctl_refuses_a_world_readable_config(host):
    assert run(host, "chmod", "644", table.IPSEC_CONF).returncode == 0
    result = run(host, IPSECCTL, "-f", table.IPSEC_CONF)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == \
        "ipsecctl: /etc/ipsec.conf: group/world readable/writeable"
    assert result.stderr.splitlines()[-1] == \
        "ipsecctl: Syntax error in config file: ipsec rules not loaded"
    assert run(host, "chmod", "600", table.IPSEC_CONF).returncode == 0
    assert run(host, IPSECCTL, "-f", table.IPSEC_CONF).returncode == 0


def test_ipsecctl_syntax_error_and_flush(host):
    text = host.read_file(table.IPSEC_CONF) + "ike passive esp bogus\n"
    host.write_file(table.IPSEC_CONF, text, 0o600)
    lines = text.count("\n")
    result = run(host, IPSECCTL, "-nf", table.IPSEC_CONF)
    assert result.returncode == 1
    assert result.stderr == (f"/etc/ipsec.conf: {lines}: syntax error\n"
                             "ipsecctl: Syntax error in config file: ipsec rules not loaded\n")
    flushed = run(host, IPSECCTL, "-F")
    assert (flushed.returncode, flushed.stdout, flushed.stderr) == (0, "", "")
    assert run(host, IPSECCTL, "-sf").stdout == ""
    assert run(host, IPSECCTL, "-ss").stdout == ""


def test_ipsecctl_sas_sorted_by_spi(host):
    sas = run(host, IPSECCTL, "-ss").stdout.splitlines()
    assert len(sas) == 6
    spis = [int(line.split(" spi ")[1].split()[0], 16) for line in sas]
    assert spis == sorted(spis)
    assert all(line.startswith("esp transport from ") and
               line.endswith(" auth hmac-sha1 enc aes") for line in sas)


# --- sysctl -----------------------------------------------------------------------

def test_sysctl_errors(host):
    bad = run(host, SYSCTL, "net.pipex.enable=2")
    # sysctl.c main() returns 0 whatever parse() warned about.
    assert (bad.returncode, bad.stderr) == (0, "sysctl: net.pipex.enable: Invalid argument\n")
    ro = run(host, SYSCTL, "kern.osrelease=8.0")
    assert ro.stderr == "sysctl: kern.osrelease: Operation not permitted\n"
    mixed = run(host, SYSCTL, "net.inet.ip.forwarding", "nosuch.x", "net.pipex.enable")
    assert mixed.stdout == "net.inet.ip.forwarding=1\nnet.pipex.enable=1\n"
    assert mixed.stderr == "sysctl: top level name nosuch in nosuch.x is invalid\n"
    assert mixed.returncode == 0
    assert run(host, SYSCTL, "net.pipex").stdout == "net.pipex.enable=1\n"


def test_sysctl_set_is_not_persisted(host):
    assert run(host, SYSCTL, "net.inet6.ip6.forwarding=1").stdout == \
        "net.inet6.ip6.forwarding: 0 -> 1\n"
    assert "ip6" not in host.read_file("/etc/sysctl.conf")


# --- ifconfig, npppctl -------------------------------------------------------------

def test_ifconfig_without_sessions(host):
    run(host, NPPPCTL, "clear", "all")
    result = run(host, IFCONFIG, "pppx")
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "pppx: no such interface\n")
    assert run(host, IFCONFIG, "pppx7").stderr == "pppx7: no such interface\n"


def test_pppx_description_needs_pipex(host, clock):
    run(host, NPPPCTL, "clear", "all")
    run(host, SYSCTL, "net.pipex.enable=0")
    with host.store.change() as state:
        from obsdvpn_agent.host.demo import events
        events.connect(state, "alice", clock.now)
    shown = run(host, IFCONFIG, "pppx0").stdout
    assert "description" not in shown
    assert shown.startswith("pppx0: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu ")


def test_npppctl_filters_and_daemon_down(host):
    one = run(host, NPPPCTL, "session", "all", "username", "bob").stdout
    assert one.count("Ppp Id = ") == 1 and "Username                : bob\n" in one
    cleared = run(host, NPPPCTL, "clear", "username", "bob")
    assert cleared.stdout == "Successfully disconnected 1 session.\n"
    run(host, RCCTL, "stop", "npppd")
    down = run(host, NPPPCTL, "session", "brief")
    assert (down.returncode, down.stderr) == (1, "npppctl: connect: No such file or directory\n")


def test_counters_grow_with_the_clock(host, clock):
    first = run(host, NPPPCTL, "session", "packets").stdout
    clock.now += 60
    assert run(host, NPPPCTL, "session", "packets").stdout != first


# --- files ------------------------------------------------------------------------

def test_write_file_keeps_a_backup_and_the_owner(host):
    old = host.read_file(table.SYSCTL_CONF)
    backup = host.write_file(table.SYSCTL_CONF, old + "net.inet6.ip6.forwarding=1\n", 0o644)
    assert backup == table.SYSCTL_CONF + ".obsdvpn-agent.bak"
    assert host.read_file(backup) == old
    info = host.stat_file(table.SYSCTL_CONF)
    assert (info.exists, info.mode, info.owner, info.group) == (True, 0o644, "root", "wheel")
    assert host.write_file("/etc/new.conf", "x\n", 0o600) is None


def test_chmod_chown_and_stat(host):
    host.chmod(table.IPSEC_CONF, 0o640)
    host.chown(table.IPSEC_CONF, 1000, 1000)
    info = host.stat_file(table.IPSEC_CONF)
    assert (info.mode, info.uid, info.owner, info.gid) == (0o640, 1000, "_obsdvpn", 1000)
    assert run(host, "/sbin/chown", "root:wheel", table.IPSEC_CONF).returncode == 0
    assert host.stat_file(table.IPSEC_CONF).uid == 0
    missing = run(host, "/bin/chmod", "600", "/etc/nosuch")
    assert (missing.returncode, missing.stderr) == (
        1, "chmod: /etc/nosuch: No such file or directory\n")
    assert not host.stat_file("/etc/nosuch").exists
    with pytest.raises(FileNotFoundError):
        host.read_file("/etc/nosuch")


# --- a non-root caller ---------------------------------------------------------------

@pytest.mark.parametrize("argv,stderr", [
    ((PFCTL, "-si"), "pfctl: /dev/pf: Permission denied\n"),
    ((PFCTL, "-e"), "pfctl: /dev/pf: Permission denied\n"),
    ((PFCTL, "-nvf", table.PF_CONF), ("pfctl: /etc/pf.conf: Permission denied\n"
                                     "pfctl: cannot open the main config file!: "
                                     "Permission denied\n")),
    ((IPSECCTL, "-sa"), "ipsecctl: ipsecctl_show: sysctl: Operation not permitted\n"),
    ((IPSECCTL, "-F"), ("ipsecctl: pfkey_init: failed to open PF_KEY socket: "
                       "Permission denied\n")),
    ((IPSECCTL, "-f", table.IPSEC_CONF),
     ("ipsecctl: cannot open the main config file!: Permission denied\n"
     "ipsecctl: Syntax error in config file: ipsec rules not loaded\n")),
    ((NPPPCTL, "-n", "session", "all"), "npppctl: connect: Permission denied\n"),
    ((RCCTL, "start", "isakmpd"), "/etc/rc.d/isakmpd: need root privileges\n"),
    ((RCCTL, "enable", "isakmpd"), 'rcctl: "enable" needs root privileges\n'),
    ((RCCTL, "set", "isakmpd", "flags", "-K"), 'rcctl: "set" needs root privileges\n'),
    ((RCCTL, "ls", "failed"), 'rcctl: "ls failed" needs root privileges\n'),
    ((SYSCTL, "net.inet.ip.forwarding=1"),
     "sysctl: net.inet.ip.forwarding: Operation not permitted\n"),
    (("/bin/chmod", "644", table.IPSEC_CONF),
     "chmod: /etc/ipsec.conf: Operation not permitted\n"),
])
def test_permission_denied_for_non_root(user_host, argv, stderr):
    result = user_host.run(argv, 5)
    # sysctl only warns: its main() returns 0 (sbin/sysctl/sysctl.c rev 1.268).
    code = 0 if argv[0] == SYSCTL else 1
    assert (result.returncode, result.stdout, result.stderr) == (code, "", stderr)


def test_non_root_can_read_what_openbsd_lets_it(user_host):
    assert run(user_host, SYSCTL, "net.pipex.enable").stdout == "net.pipex.enable=1\n"
    assert run(user_host, RCCTL, "check", "npppd").stdout == "npppd(ok)\n"
    assert run(user_host, RCCTL, "get", "isakmpd", "flags").stdout == "-K\n"
    assert run(user_host, IPSECCTL, "-sf").stdout.count("flow esp ") == 6
    assert run(user_host, IFCONFIG, "pppx").returncode == 0
    assert user_host.info().is_root is False
    with pytest.raises(PermissionError):
        user_host.read_file(table.IPSEC_CONF)
    with pytest.raises(PermissionError):
        user_host.write_file(table.SYSCTL_CONF, "", 0o644)
    with pytest.raises(PermissionError):
        user_host.chmod(table.PF_CONF, 0o644)
    assert user_host.read_file(table.SYSCTL_CONF).startswith("net.inet.ip.forwarding=1")
