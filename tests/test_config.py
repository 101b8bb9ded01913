"""Configuration: defaults, a full file, and one clear line for each bad input."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from obsdvpn_agent.config import Config, ConfigError, load, to_toml


def write(tmp_path, text: str) -> str:
    p = tmp_path / "obsdvpn-agent.conf"
    p.write_text(text)
    return str(p)


def test_defaults_describe_the_standard_host(tmp_path):
    cfg = load(None) if not (tmp_path / "x").exists() else None
    assert cfg == Config()
    assert cfg.sysctl_names == ("net.inet.ip.forwarding", "net.pipex.enable")
    assert cfg.isakmpd_flags == "-K" and cfg.vpn_network == "10.0.0.0/24"
    assert cfg.listen == "127.0.0.1:8469"


def test_full_file_and_round_trip(tmp_path):
    path = write(tmp_path, """
[sysctl.required]
"net.inet.ip.forwarding" = 1
[sysctl.optional]
"net.inet6.ip6.forwarding" = "1"
[vpn]
network = "10.8.0.0/24"
ppp_interface = "pppac0"
[commands]
timeout = 2.5
""")
    cfg = load(path)
    assert [(s.name, s.value, s.required) for s in cfg.sysctls] == [
        ("net.inet.ip.forwarding", "1", True), ("net.inet6.ip6.forwarding", "1", False)]
    assert cfg.vpn_network == "10.8.0.0/24" and cfg.ppp_interface == "pppac0"
    assert cfg.command_timeout_s == 2.5
    again = write(tmp_path, to_toml(cfg))
    assert load(again) == cfg


@pytest.mark.parametrize("text, message", [
    ("[vpn]\nnetwork = 5\n", "key 'vpn.network': expected an IPv4 or IPv6 network"),
    ("[vpn]\nnetwork = \"10.0.0/33\"\n", "key 'vpn.network': expected an IP network"),
    ("[vpn]\nnetmask = \"x\"\n", "unknown key 'vpn.netmask'"),
    ("[bogus]\n", "unknown key 'bogus'"),
    ("[commands]\ntimeout = true\n", "key 'commands.timeout': expected a number of seconds"),
    ("[commands]\ntimeout = -1\n", "key 'commands.timeout': expected a number of seconds > 0"),
    ("[sysctl.required]\n\"net.inet.ip.forwarding\" = [1]\n",
     "key 'sysctl.required.\"net.inet.ip.forwarding\"': expected a string or integer"),
    ("[serve]\nlisten = \"nowhere\"\n", "key 'serve.listen': expected ADDRESS:PORT"),
    ("vpn = 3\n", "key 'vpn' must be a table"),
    ("[vpn\n", "not valid TOML"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(e.value).startswith(path + ": ")
    assert message in str(e.value)


def test_bad_config_through_cli_is_one_line_exit_3(tmp_path):
    path = write(tmp_path, "[vpn]\nnetwork = 5\n")
    p = run_cli("--config", path, "--demo-state", str(tmp_path / "d.json"), "check")
    assert p.returncode == 3
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert f"{path}: key 'vpn.network'" in p.stderr


def test_missing_explicit_config_is_an_error(tmp_path):
    p = run_cli("--config", str(tmp_path / "nope.conf"), "config")
    assert p.returncode == 3 and "nope.conf: no such file" in p.stderr


def test_config_command_prints_effective_toml(tmp_path):
    p = run_cli("config")
    assert p.returncode == 0
    assert '"net.pipex.enable" = "1"' in p.stdout and 'listen = "127.0.0.1:8469"' in p.stdout


def test_usage_error_exits_3_not_2():
    p = run_cli("check", "--no-such-option")
    assert p.returncode == 3
    assert "No such option" in p.stderr


def test_optional_sysctls_alone_keep_the_required_defaults(tmp_path):
    cfg = load(write(tmp_path, '[sysctl.optional]\n"net.inet6.ip6.forwarding" = "1"\n'))
    assert [(s.name, s.required) for s in cfg.sysctls] == [
        ("net.inet.ip.forwarding", True), ("net.pipex.enable", True),
        ("net.inet6.ip6.forwarding", False)]


@pytest.mark.parametrize("text, message", [
    ("[sysctl.required]\n", "expected at least one sysctl to check"),
    ('[sysctl.required]\n"net.inet.tcp.baddynamic" = "1,2"\n', "expected a plain value"),
    ('[isakmpd]\nflags = "-K; rm -rf /"\n', "key 'isakmpd.flags': expected flags"),
    # shaped like flags, but isakmpd's getopt refuses them: repair would set them and
    # the check would blame rcctl's (good) flags for them
    ('[isakmpd]\nflags = "-Z"\n', "key 'isakmpd.flags': isakmpd would refuse '-Z': no option -Z"),
    ('[isakmpd]\nflags = "-K -f"\n', "key 'isakmpd.flags': isakmpd would refuse '-K -f': "),
    ('[isakmpd]\nflags = "-K now"\n', "is not an option"),
])
def test_values_repair_could_not_pass_are_refused_at_load(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))


# --- issue 13: items 4, 9 and 12 --------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "301", "0", "0.0",
                                   "1" + "0" * 30])
def test_timeout_must_be_a_sane_finite_number(tmp_path, value):
    path = write(tmp_path, f"[commands]\ntimeout = {value}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'commands.timeout': expected a "
                                          r"number of seconds > 0 and <= 300"):
        load(path)


def test_config_command_refuses_nan_timeout_in_one_line(tmp_path):
    # `obsdvpn-agent config` is the rc.d pre-start check.
    path = write(tmp_path, "[commands]\ntimeout = nan\n")
    p = run_cli("--config", path, "config")
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "commands.timeout" in p.stderr and path in p.stderr


@pytest.mark.parametrize("key, value", [("state_limit_warning", "nan"),
                                        ("state_limit_critical", "inf"),
                                        ("state_limit_warning", "0"),
                                        ("state_limit_critical", "1.5")])
def test_state_limits_are_fractions(tmp_path, key, value):
    path = write(tmp_path, f"[pf]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=f"key 'pf.{key}': expected a fraction"):
        load(path)


def test_state_limit_warning_not_above_critical(tmp_path):
    path = write(tmp_path, "[pf]\nstate_limit_warning = 0.9\nstate_limit_critical = 0.5\n")
    with pytest.raises(ConfigError, match="'pf.state_limit_warning': 0.9 is above "
                                          "pf.state_limit_critical 0.5"):
        load(path)
    equal = write(tmp_path, "[pf]\nstate_limit_warning = 0.9\nstate_limit_critical = 0.9\n")
    assert load(equal).state_limit_warning == 0.9


def test_integer_of_thousands_of_digits_is_one_line(tmp_path):
    path = write(tmp_path, "[commands]\ntimeout = 1" + "0" * 5000 + "\n")
    with pytest.raises(ConfigError, match=f"^{path}: not valid TOML"):
        load(path)


@pytest.mark.parametrize("name", ["pppx; reboot", "pppx\nreboot", "pppac0 ", "pppxx", "ppp0",
                                  "pppx٣", "pppac"+"1" * 20, "em0"])
def test_ppp_interface_must_be_an_interface_name(tmp_path, name):
    path = write(tmp_path, f"[vpn]\nppp_interface = {json.dumps(name)}\n")
    with pytest.raises(ConfigError, match="key 'vpn.ppp_interface': expected") as e:
        load(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["pppx", "pppx0", "pppac0", "pppac12"])
def test_ppp_interface_names_accepted(tmp_path, name):
    assert load(write(tmp_path, f'[vpn]\nppp_interface = "{name}"\n')).ppp_interface == name


@pytest.mark.parametrize("name", ["Net.inet.ip.forwarding", "net.inet.ip.forwardİng",
                                  "net.inet.ip.ＦＯＲ", "net..pipex", "net.pipex.", "net",
                                  "1net.pipex", "net.pipex\n.enable"])
def test_sysctl_names_config_refuses(tmp_path, name):
    path = write(tmp_path, f"[sysctl.required]\n{json.dumps(name)} = 1\n")
    with pytest.raises(ConfigError, match="not a sysctl name") as e:
        load(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["net.inet.ip.forwarding", "net.pipex.enable",
                                  "net.inet6.ip6.forwarding", "kern.maxfiles", "net.key.sa_x"])
def test_every_sysctl_the_config_accepts_repair_can_apply(tmp_path, name):
    from obsdvpn_agent import commands
    from obsdvpn_agent.repair import allowed

    cfg = load(write(tmp_path, f'[sysctl.required]\n"{name}" = "1"\n'))
    assert cfg.sysctls[0].name == name
    assert allowed((commands.SYSCTL, f"{name}={cfg.sysctls[0].value}"))


@pytest.mark.parametrize("listen, ok", [("127.0.0.1:0", True), ("[::1]:8469", True),
                                        ("127.0.0.1:65535", True), ("127.0.0.1:65536", False),
                                        ("127.0.0.1:99999", False), ("127.0.0.1:", False),
                                        ("127.0.0.1:٣", False), (":8469", False)])
def test_one_listen_rule_for_config_and_command_line(tmp_path, listen, ok):
    from obsdvpn_agent.server import ListenError, parse_listen

    path = write(tmp_path, f'[serve]\nlisten = "{listen}"\n')
    if ok:
        assert load(path).listen == listen
        parse_listen(listen)
    else:
        with pytest.raises(ConfigError, match="key 'serve.listen'"):
            load(path)
        with pytest.raises(ListenError, match=f"--listen {listen}"):
            parse_listen(listen)


def test_serve_listen_port_out_of_range_is_one_line():
    p = run_cli("--demo", "serve", "--listen", "127.0.0.1:99999")
    assert p.returncode == 3
    assert p.stderr == ("obsdvpn-agent: --listen 127.0.0.1:99999: port 99999 is out of range "
                        "(0 to 65535) in '127.0.0.1:99999'\n")


def test_sighup_with_a_nan_timeout_keeps_the_old_config(tmp_path):
    from obsdvpn_agent.server import Collector, failed_collection

    path = write(tmp_path, "[commands]\ntimeout = 2\n")
    collector = Collector(lambda: None, lambda: load(path), 3600,
                          collect=lambda cfg: failed_collection("not collected in this test", None))
    assert collector.cfg.command_timeout_s == 2
    write(tmp_path, "[commands]\ntimeout = nan\n")
    collector.reload()
    collector.collect_once()
    assert collector.cfg.command_timeout_s == 2
