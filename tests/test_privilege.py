"""doas.conf rules from the command table, the README's copy of them, and the
pledge/unveil hardening (a no-op here, applied through a fake libc)."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import shlex
import sys
import types
from pathlib import Path

import pytest

from conftest import run_cli
from obsdvpn_agent import commands, privilege
from obsdvpn_agent.config import Config
from obsdvpn_agent.privilege import (
    doas_rule,
    doas_rules,
    harden_serve,
    pledge_promises,
    unveil_plan,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- doas-rules -->", "<!-- /doas-rules -->"

DEFAULT_RULES = [
    "permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -si",
    "permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -sr",
    "permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -sm",
    "permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -nvf /etc/pf.conf",
    'permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -a "*" -sr',
    "permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -sI -v",
    "permit nopass nolog _obsdvpn as root cmd /sbin/ipsecctl args -sa",
    "permit nopass nolog _obsdvpn as root cmd /usr/sbin/npppctl args -n session all",
]


def test_default_config_rules_are_exactly_the_root_only_commands():
    assert doas_rules(Config()) == DEFAULT_RULES


def test_rules_name_every_root_argv_and_nothing_else():
    cfg = Config()
    argvs = set()
    for rule in doas_rules(cfg):
        words = shlex.split(rule)
        assert words[:7] == ["permit", "nopass", "nolog", "_obsdvpn", "as", "root", "cmd"]
        assert words[8] == "args"
        argvs.add((words[7], *words[9:]))
    assert argvs == commands.root_argvs(cfg)
    # The unprivileged ones need no rule: sysctl, rcctl, ifconfig.
    assert not any(c.argv[0] in (commands.SYSCTL, commands.RCCTL, commands.IFCONFIG)
                   for c in commands.probe_commands(cfg) if c.needs_root)


def test_rule_without_arguments_says_args_alone():
    # doas.conf(5): "The keyword args alone means that command must be run
    # without any arguments."
    assert doas_rule(("/sbin/pfctl",)) == "permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args"


def test_rule_for_another_user():
    assert doas_rule(("/sbin/ipsecctl", "-sa"), user="_vpnmon") == \
        "permit nopass nolog _vpnmon as root cmd /sbin/ipsecctl args -sa"


def test_keywords_and_spaces_are_quoted():
    assert doas_rule(("/usr/sbin/rcctl", "set", "isakmpd", "flags", "-K -v")) == \
        'permit nopass nolog _obsdvpn as root cmd /usr/sbin/rcctl args set isakmpd flags "-K -v"'
    assert doas_rule(("/bin/echo", "args", "cmd")).endswith('args "args" "cmd"')


@pytest.mark.parametrize("argv", [("pfctl", "-si"), (), ("/bin/echo", 'say "hi"'),
                                  ("/bin/echo", "a\\b"), ("/bin/echo", ""),
                                  ("/bin/echo", "# not a comment")])
def test_unwritable_rules_are_refused(argv):
    with pytest.raises(ValueError):
        doas_rule(argv)


def test_duplicate_commands_give_one_rule(monkeypatch):
    cmd = commands.PFCTL_INFO
    monkeypatch.setattr(commands, "probe_commands",
                        lambda cfg: (cmd, commands.RCCTL_LS_ON, cmd))
    assert doas_rules(Config()) == ["permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -si"]


def readme_rules(text: str) -> list[str]:
    if BEGIN not in text or END not in text:
        pytest.fail(f"{README.name} has no {BEGIN} ... {END} section with the doas.conf lines")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    lines = [line.strip() for line in block.strip().splitlines()]
    assert lines[0].startswith("```") and lines[-1] == "```", block
    return [line for line in lines[1:-1] if line]


def test_readme_doas_rules_equal_the_command_table():
    if not README.exists():
        pytest.fail(f"{README} is missing: its INSTALLING ON OPENBSD section "
                    "holds the doas.conf lines")
    assert readme_rules(README.read_text()) == doas_rules(Config())


def test_readme_rule_extraction_notices_a_drifted_line():
    rules = doas_rules(Config())
    text = "\n".join(["x", BEGIN, "```", *rules[:-1], rules[-1] + " extra", "```", END, "y"])
    assert readme_rules(text) != rules
    text = "\n".join([BEGIN, "```", *rules, "```", END])
    assert readme_rules(text) == rules


def test_hardening_is_a_no_op_off_openbsd(monkeypatch):
    assert platform.system() != "OpenBSD"

    def no_libc(*args, **kwargs):
        raise AssertionError("harden_serve must not load libc off OpenBSD")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert harden_serve(Config()) is False
    assert sys.dont_write_bytecode is False


class FakeLibc:
    """Records unveil/pledge calls like OpenBSD's libc would receive them."""

    def __init__(self, fail_unveil: dict[str, int] | None = None, fail_pledge: int = 0):
        self.calls: list[tuple] = []
        self.fail_unveil = fail_unveil or {}

        def unveil(path, perms):
            self.calls.append(("unveil", path, perms))
            err = self.fail_unveil.get(path.decode() if path else None)
            if err:
                ctypes.set_errno(err)
                return -1
            return 0

        def pledge(promises, execpromises):
            self.calls.append(("pledge", promises, execpromises))
            if fail_pledge:
                ctypes.set_errno(fail_pledge)
                return -1
            return 0

        self.unveil, self.pledge = unveil, pledge


@pytest.fixture
def on_openbsd(monkeypatch):
    monkeypatch.setattr(platform, "system", lambda: "OpenBSD")
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)

    def use(libc: FakeLibc) -> FakeLibc:
        monkeypatch.setattr(ctypes, "CDLL", lambda name, use_errno=False: libc)
        return libc
    return use


def test_hardening_unveils_then_locks_then_pledges(on_openbsd):
    libc = on_openbsd(FakeLibc())
    cfg = Config(use_doas=True)
    assert harden_serve(cfg, "/etc/obsdvpn-agent.conf") is True
    unveils = {c[1].decode(): c[2].decode() for c in libc.calls[:-2]}
    # The probe commands run in the `collect` child; execve drops the unveil list.
    assert unveils[os.path.abspath(sys.executable)] == "rx"
    assert "/sbin/pfctl" not in unveils and "/etc/npppd/npppd-users" not in unveils
    assert unveils["/etc/obsdvpn-agent.conf"] == "r"
    assert unveils["/dev/log"] == "w"
    assert not any("w" in p or "c" in p for path, p in unveils.items() if path != "/dev/log")
    assert libc.calls[-2] == ("unveil", None, None)
    assert libc.calls[-1] == ("pledge", b"stdio rpath inet unix proc exec prot_exec", None)
    assert sys.dont_write_bytecode is True


def test_a_missing_directory_is_skipped_other_unveil_errors_raise(on_openbsd):
    libc = on_openbsd(FakeLibc(fail_unveil={"/no/such/dir/file": errno.ENOENT}))
    assert harden_serve(Config(), read_paths=["/no/such/dir/file"]) is True
    assert libc.calls[-1][0] == "pledge"
    on_openbsd(FakeLibc(fail_unveil={"/etc/obsdvpn-agent.conf": errno.EPERM}))
    with pytest.raises(OSError, match="unveil /etc/obsdvpn-agent.conf r"):
        harden_serve(Config())


def test_a_refused_pledge_raises(on_openbsd):
    on_openbsd(FakeLibc(fail_pledge=errno.EINVAL))
    with pytest.raises(OSError, match="pledge"):
        harden_serve(Config())


def test_write_dirs_add_write_promises_and_permissions(tmp_path):
    plan = dict(unveil_plan(Config(), write_dirs=[str(tmp_path)]))
    assert plan[str(tmp_path)] == "rwc"
    assert pledge_promises(writes=True).split()[-3:] == ["wpath", "cpath", "flock"]
    assert "wpath" not in pledge_promises().split()


def test_plan_lets_serve_run_its_collector_child_and_nothing_else():
    cfg = Config(use_doas=True)
    plan = dict(unveil_plan(cfg))
    assert plan[os.path.abspath(sys.executable)] == "rx"
    assert {p for p, perms in plan.items() if "x" in perms} == {
        os.path.abspath(sys.executable), os.path.realpath(sys.executable)}
    agent_dir = str(Path(privilege.__file__).resolve().parents[1])
    assert any(agent_dir.startswith(p) and "r" in perms for p, perms in plan.items())
    assert all(re.fullmatch(r"r?w?x?c?", perms) for perms in plan.values())


def test_hardening_module_exposes_no_accidental_libc_at_import():
    # Importing the module must not touch libc either (serve imports it everywhere).
    assert isinstance(privilege, types.ModuleType)
    assert not any(isinstance(v, ctypes.CDLL) for v in vars(privilege).values())


@pytest.mark.parametrize("user", ['x"y', "x\ny", "#", "", "x y", "-x", "1abc", "a" * 33,
                                  "permit", "_obsdvpn\\", "élan"])
def test_doas_rules_refuses_a_user_that_is_no_identity(user):
    # Issue 13 item 11: a usage error naming the value, never "internal error".
    p = run_cli("doas-rules", "--user", user)
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr == (f"obsdvpn-agent: --user: {user!r} is not a user name or :group (a letter "
                        "or _, then letters, digits, _ . -, at most 32)\n")


@pytest.mark.parametrize("user", ["_obsdvpn", "vpnmon", ":wheel", "a.b-c_d"])
def test_doas_rules_accepts_users_and_groups(user):
    p = run_cli("doas-rules", "--user", user)
    assert p.returncode == 0, p.stderr
    assert all(line.startswith(f"permit nopass nolog {user} as root cmd /")
               for line in p.stdout.splitlines())
