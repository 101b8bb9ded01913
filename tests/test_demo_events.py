"""Events on the demo host (reboot, crash, connect, break) and the `demo` CLI group."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from obsdvpn_agent import commands as table
from obsdvpn_agent.cli_demo import demo
from obsdvpn_agent.host.demo import SCENARIOS, DemoHost, EventError, events

NOW = 1_714_570_000.0
SYSCTL, RCCTL, PFCTL, IPSECCTL, NPPPCTL = (
    table.SYSCTL, table.RCCTL, table.PFCTL, table.IPSECCTL, table.NPPPCTL)


@pytest.fixture
def host(tmp_path) -> DemoHost:
    return DemoHost(tmp_path / "state.json", clock=lambda: NOW)


def run(host, *argv):
    return host.run(argv, timeout_s=5)


def event(host, fn, *args):
    with host.store.change() as state:
        return fn(state, *args, NOW)


# --- reboot -------------------------------------------------------------------

def test_reboot_restores_sysctl_conf_and_loses_the_rest(host):
    run(host, SYSCTL, "net.inet6.ip6.forwarding=1")      # by hand only
    run(host, SYSCTL, "net.inet.ip.forwarding=0")        # by hand, persisted is 1
    event(host, events.reboot)
    out = run(host, SYSCTL, "net.inet6.ip6.forwarding", "net.inet.ip.forwarding",
              "net.pipex.enable").stdout
    assert out == ("net.inet6.ip6.forwarding=0\nnet.inet.ip.forwarding=1\n"
                   "net.pipex.enable=1\n")


def test_reboot_starts_enabled_daemons_with_their_flags_and_drops_sessions(host):
    run(host, RCCTL, "disable", "npppd")
    run(host, RCCTL, "-f", "start", "iked")              # running but not enabled
    assert "sessions dropped" in event(host, events.reboot)
    assert run(host, RCCTL, "check", "npppd").stdout == "npppd(failed)\n"
    assert run(host, RCCTL, "check", "iked").stdout == "iked(failed)\n"
    assert run(host, RCCTL, "check", "isakmpd").stdout == "isakmpd(ok)\n"
    assert run(host, NPPPCTL, "session", "brief").stderr == \
        "npppctl: connect: No such file or directory\n"
    with host.store.change() as state:
        assert state["sessions"] == []
        assert state["ike_loaded"] is True               # ipsec=YES, isakmpd -K
    info = run(host, PFCTL, "-si").stdout
    assert info.startswith(f"{'Status: Enabled':<44}")


def test_reboot_with_ipsec_disabled_leaves_isakmpd_without_policy(host):
    run(host, RCCTL, "disable", "ipsec")
    event(host, events.reboot)
    with host.store.change() as state:
        assert state["ike_loaded"] is False
    with pytest.raises(EventError, match="no IKE policy"):
        event(host, events.connect, "alice")


def test_reboot_with_broken_pf_conf_keeps_the_boot_ruleset(host):
    host.write_file(table.PF_CONF, "pass\nthis is not pf\n", 0o600)
    event(host, events.reboot)
    rules = run(host, PFCTL, "-sr").stdout.splitlines()
    assert rules[0] == "block drop all"
    assert "pass in proto tcp from any to any port = 22 flags S/SA" in rules
    assert run(host, PFCTL, "-si").stdout.startswith("Status: Enabled")


def test_reboot_with_pf_no(host):
    run(host, RCCTL, "disable", "pf")
    event(host, events.reboot)
    assert run(host, PFCTL, "-si").stdout.startswith("Status: Disabled")
    assert run(host, PFCTL, "-sr").stdout == ""
    assert "pflogd" not in run(host, RCCTL, "ls", "on").stdout.split()


# --- crash, connect, disconnect ----------------------------------------------------

def test_crash_isakmpd_drops_sessions(host):
    assert event(host, events.crash, "isakmpd") == "isakmpd crashed; 3 VPN session(s) dropped"
    assert run(host, RCCTL, "ls", "failed").stdout == "isakmpd\n"
    with pytest.raises(EventError, match="isakmpd is not running"):
        event(host, events.connect, "alice")
    with pytest.raises(EventError, match="not running"):
        event(host, events.crash, "isakmpd")


def test_crashed_npppd_leaves_its_socket(host):
    event(host, events.crash, "npppd")
    assert run(host, NPPPCTL, "session", "all").stderr == "npppctl: connect: Connection refused\n"


def test_connect_and_disconnect(host):
    message = event(host, events.connect, "dave")
    assert "dave connected from " in message and "as 10.0.0.5 on pppx3 (ppp id 3)" in message
    brief = run(host, NPPPCTL, "session", "brief").stdout.splitlines()
    assert brief[-1].split()[:3] == ["3", "10.0.0.5", "dave"]
    assert len(run(host, IPSECCTL, "-ss").stdout.splitlines()) == 8
    assert event(host, events.disconnect, "alice") == "alice disconnected (1 session(s))"
    assert "alice" not in run(host, NPPPCTL, "session", "brief").stdout
    assert "pppx0:" not in run(host, table.IFCONFIG, "pppx").stdout
    again = event(host, events.connect, "alice")  # first free unit and address again
    assert "as 10.0.0.2 on pppx0" in again
    with pytest.raises(EventError, match="no user 'mallory'"):
        event(host, events.connect, "mallory")
    with pytest.raises(EventError, match="has no session"):
        event(host, events.disconnect, "heidi")


# --- break scenarios ------------------------------------------------------------------

def test_scenarios_are_the_issue_list():
    assert set(SCENARIOS) >= {"reboot-drift", "isakmpd-down", "flags-lost", "ipsec-disabled",
                              "pf-disabled", "ruleset-flushed", "pfconf-unloaded",
                              "ipsec-conf-mode"}
    assert all(desc and "\n" not in desc for desc, _ in SCENARIOS.values())


def test_break_reboot_drift(host):
    event(host, events.break_host, "reboot-drift")
    assert run(host, SYSCTL, "net.inet.ip.forwarding").stdout == "net.inet.ip.forwarding=0\n"
    assert "net.inet.ip.forwarding" not in host.read_file(table.SYSCTL_CONF)
    assert run(host, SYSCTL, "net.pipex.enable").stdout == "net.pipex.enable=1\n"


def test_break_isakmpd_down(host):
    event(host, events.break_host, "isakmpd-down")
    assert run(host, RCCTL, "check", "isakmpd").returncode == 1


def test_break_flags_lost(host):
    event(host, events.break_host, "flags-lost")
    assert run(host, RCCTL, "get", "isakmpd", "flags").stdout == ""
    assert "isakmpd_flags=\n" in host.read_file("/etc/rc.conf.local")
    procs = [p.cmdline for p in host.processes() if p.name == "isakmpd"]
    assert ("/sbin/isakmpd", "-K") in procs


def test_break_ipsec_disabled(host):
    event(host, events.break_host, "ipsec-disabled")
    assert "ipsec" not in run(host, RCCTL, "ls", "on").stdout.split()
    assert run(host, IPSECCTL, "-sf").stdout != ""  # running state unchanged


def test_break_pf_disabled_and_ruleset_flushed(host):
    event(host, events.break_host, "pf-disabled")
    assert run(host, PFCTL, "-si").stdout.startswith("Status: Disabled")
    event(host, events.break_host, "ruleset-flushed")
    assert run(host, PFCTL, "-sr").stdout == ""


def test_break_pfconf_unloaded(host):
    event(host, events.break_host, "pfconf-unloaded")
    loaded = run(host, PFCTL, "-sr").stdout.splitlines()
    configured = run(host, PFCTL, "-nvf", table.PF_CONF).stdout.splitlines()
    extra = [r for r in configured
             if r not in loaded and r.startswith(("pass", "block", "match"))]
    assert extra == ["pass in on egress proto tcp from any to any port = 80 flags S/SA",
                     "pass in on egress proto tcp from any to any port = 443 flags S/SA"]


def test_break_ipsec_conf_mode(host):
    event(host, events.break_host, "ipsec-conf-mode")
    assert host.stat_file(table.IPSEC_CONF).mode == 0o644
    assert run(host, IPSECCTL, "-f", table.IPSEC_CONF).returncode == 1


def test_unknown_scenario(host):
    with pytest.raises(EventError, match="unknown scenario"):
        event(host, events.break_host, "nosuch")


# --- reset and size -----------------------------------------------------------------

def test_reset_sizes_the_host_and_renders_5000_sessions(tmp_path):
    # How fast: bench/bench.py, `demo_render_5000_sessions`.
    host = DemoHost(tmp_path / "big.json", clock=lambda: NOW)
    host.store.replace(events.reset(NOW, 5000))
    state = host.store.read()
    from obsdvpn_agent.host.demo import commands
    outputs = [commands.run_command(state, argv, NOW, True)[1] for argv in (
        (NPPPCTL, "-n", "session", "all"), (table.IFCONFIG, "pppx"), (IPSECCTL, "-sa"))]
    assert outputs[0].count("Ppp Id = ") == 5000
    assert outputs[1].count("groups: pppx") == 5000
    assert outputs[2].count("esp transport") == 10000
    assert len({s["ip"] for s in state["sessions"]}) == 5000


def test_reset_zero_sessions(host):
    host.store.replace(events.reset(NOW, 0))
    assert run(host, IPSECCTL, "-sa").stdout == "FLOWS:\nNo flows\n\nSAD:\nNo entries\n"


# --- the CLI group --------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path):
    runner = CliRunner()
    obj = SimpleNamespace(demo_state=tmp_path / "cli.json")

    def invoke(*args):
        return runner.invoke(demo, list(args), obj=obj)
    return invoke


def test_cli_run_prints_and_exits_like_the_command(cli):
    result = cli("run", "--", "rcctl", "stop", "isakmpd")
    assert (result.exit_code, result.stdout) == (0, "isakmpd(ok)\n")
    failed = cli("run", "--", "rcctl", "check", "isakmpd")
    assert (failed.exit_code, failed.stdout) == (1, "isakmpd(failed)\n")
    missing = cli("run", "--", "uname", "-a")
    assert missing.exit_code == 127
    assert "demo: command not modelled by the demo host: uname -a" in missing.output
    pf = cli("run", "--", "pfctl", "-d")
    assert (pf.exit_code, pf.stderr) == (0, "pf disabled\n")


def test_cli_events(cli):
    assert cli("connect", "erin").exit_code == 0
    assert "erin" in cli("run", "--", "npppctl", "session", "brief").stdout
    assert cli("disconnect", "erin").stdout == "erin disconnected (1 session(s))\n"
    assert cli("crash", "npppd").stdout.startswith("npppd crashed")
    assert cli("reboot").exit_code == 0
    assert cli("run", "--", "rcctl", "check", "npppd").exit_code == 0
    assert cli("reset", "--sessions", "1").exit_code == 0
    assert cli("run", "--", "npppctl", "session", "brief").stdout.count("L2TP") == 1


def test_cli_break_list_and_break(cli):
    listing = cli("break", "--list")
    assert listing.exit_code == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert names == list(SCENARIOS)
    assert cli("break", "pf-disabled").exit_code == 0
    assert cli("run", "--", "pfctl", "-si").stdout.startswith("Status: Disabled")


@pytest.mark.parametrize("args,message", [
    (("connect", "mallory"), ("obsdvpn-agent demo: no user 'mallory' in "
                             "/etc/npppd/npppd-users\n")),
    (("crash", "nosuchd"), "obsdvpn-agent demo: no daemon called 'nosuchd' on this host\n"),
    (("break", "nosuch"), ("obsdvpn-agent demo: unknown scenario 'nosuch'; see "
                          "`demo break --list`\n")),
    (("break",), "obsdvpn-agent demo: name a scenario (demo break --list shows them)\n"),
    (("reset", "--sessions", "-1"), ("obsdvpn-agent demo: --sessions must be between 0 and "
                                    "60000\n")),
])
def test_cli_errors_are_one_line_exit_3(cli, args, message):
    result = cli(*args)
    assert (result.exit_code, result.stderr) == (3, message)


def test_cli_corrupt_state_then_reset(cli, tmp_path):
    (tmp_path / "cli.json").write_text("{not json")
    result = cli("run", "--", "sysctl", "net.pipex.enable")
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1
    assert str(tmp_path / "cli.json") in result.stderr and "invalid JSON" in result.stderr
    assert cli("reset").exit_code == 0
    assert cli("run", "--", "sysctl", "net.pipex.enable").stdout == "net.pipex.enable=1\n"


def test_cli_without_root_object_uses_the_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    result = CliRunner().invoke(demo, ["run", "--", "sysctl", "-n", "net.pipex.enable"])
    assert (result.exit_code, result.stdout) == (0, "1\n")
    assert (tmp_path / "xdg" / "obsdvpn-agent" / "demo-state.json").exists()


def test_demo_commands_as_separate_processes(tmp_path):
    """Each step its own process, sharing the state file, as a person would type them."""
    from conftest import run_cli

    state = str(tmp_path / "proc.json")
    stop = run_cli("--demo-state", state, "demo", "run", "--", "rcctl", "stop", "npppd")
    assert (stop.returncode, stop.stdout) == (0, "npppd(ok)\n")
    check = run_cli("--demo-state", state, "demo", "run", "--", "rcctl", "check", "npppd")
    assert (check.returncode, check.stdout) == (1, "npppd(failed)\n")
    bad = run_cli("--demo-state", state, "demo", "connect", "alice")
    assert (bad.returncode, bad.stderr) == (
        3, "obsdvpn-agent demo: alice cannot connect: npppd is not running\n")
    assert "Traceback" not in bad.stderr
