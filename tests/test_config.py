"""Configuration: defaults, a full file, and one clear line for each bad input."""

from __future__ import annotations

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
])
def test_values_repair_could_not_pass_are_refused_at_load(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text))
