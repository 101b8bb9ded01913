"""The man page, man/obsdvpn-agent.8: mdoc that mandoc lints clean, with the
sections an OpenBSD admin looks for, installed with the package, and in step
with the command line: every command and option of the click group, read from
the group itself, is in the page's command list, under its own command.

mandoc comes from Debian's `mandoc` package (`make deps` installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from obsdvpn_agent.cli import main_group

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "man" / "obsdvpn-agent.8"

# mandoc -Wstyle looks each .Xr up in the local manual tree. These are the
# OpenBSD base manuals the page refers to; a Debian machine has none of them, so
# "referenced manual not found" for exactly these is expected (their sources:
# openbsd/src share/man/man4/pf.4, usr.sbin/npppd/npppd/npppd.8, ...).
OPENBSD_MANUALS = {
    "isakmpd 8", "ipsecctl 8", "ipsec.conf 5", "npppd 8", "npppd-users 5", "npppd.conf 5",
    "pppx 4", "pppac 4", "pf 4", "pf.conf 5", "pfctl 8", "rcctl 8", "cron 8", "crontab 5",
    "doas 1", "doas.conf 5", "npppctl 8", "sysctl 8", "sysctl.conf 5", "syslog 3",
    "newsyslog 8",
}


def mandoc() -> str:
    path = shutil.which("mandoc")
    assert path, "mandoc not found: install Debian's mandoc package (`make deps`)"
    return path


def page() -> str:
    return PAGE.read_text()


# -- the page as mdoc --------------------------------------------------------------

def test_mandoc_lints_the_page_clean() -> None:
    r = subprocess.run([mandoc(), "-Tlint", "-Wstyle", str(PAGE)], capture_output=True,
                       text=True, timeout=30, check=False)
    problems = []
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(r"STYLE: referenced manual not found: Xr (\S+ \d)", line)
        if m and m.group(1) in OPENBSD_MANUALS:
            continue
        if "outdated mandoc.db" in line:  # the Debian machine's index, not the page
            continue
        problems.append(line)
    assert not problems, "\n".join(problems)
    # and nothing above style level at all
    r = subprocess.run([mandoc(), "-Tlint", "-Wwarning", str(PAGE)], capture_output=True,
                       text=True, timeout=30, check=False)
    assert r.returncode == 0 and "obsdvpn-agent.8" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_every_manual_the_page_refers_to_is_listed_or_installed() -> None:
    """A new .Xr that is neither an OpenBSD base manual named above nor on this
    machine would slip through the filtered lint: it must be added on purpose."""
    for ref in sorted(set(re.findall(r"^\.Xr (\S+ \d)", page(), re.MULTILINE))):
        assert ref in OPENBSD_MANUALS, f"Xr {ref}: add it to OPENBSD_MANUALS if it is in base"


def test_the_page_has_the_sections_in_order() -> None:
    sections = re.findall(r"^\.Sh (.+)$", page(), re.MULTILINE)
    assert sections == ["NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES",
                        "EXIT STATUS", "EXAMPLES", "SEE ALSO", "SECURITY CONSIDERATIONS"]
    assert re.search(r"^\.Dt OBSDVPN-AGENT 8$", page(), re.MULTILINE)
    assert re.search(r"^\.Dd \$Mdocdate: \w+ \d{1,2} \d{4} \$$", page(), re.MULTILINE)


def test_the_page_renders(tmp_path: Path) -> None:
    r = subprocess.run([mandoc(), "-Tascii", str(PAGE)], capture_output=True, text=True,
                       timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    text = re.sub(r".\x08", "", r.stdout)
    assert "obsdvpn-agent - watch and repair an OpenBSD L2TP/IPsec VPN host" in text
    assert "check [--json] [-q | --quiet] [--textfile path]" in text


# -- in step with the command line --------------------------------------------------

def commands(group: click.Group, path: tuple[str, ...] = ()) -> list[
        tuple[tuple[str, ...], click.Command]]:
    """Every visible command, groups' leaves by their full path ("demo break")."""
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        if cmd.hidden:
            continue
        if isinstance(cmd, click.Group):
            out += commands(cmd, (*path, name))
        else:
            out.append(((*path, name), cmd))
    return out


def options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden
            and p.name != "help"]


def command_items() -> dict[str, str]:
    """The page's command list: "demo break" -> its .It head and body (mdoc source)."""
    text = page()
    start = text.index("The commands are as follows:")
    end = text.index(".Sh ENVIRONMENT")
    items: dict[str, str] = {}
    name = None
    depth = 0
    for line in text[start:end].splitlines():
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
        if depth == 1 and line.startswith(".It"):
            name = None
        if name is None and depth == 1 and (m := re.match(r"^(?:\.It )?\.?Cm ([a-z -]+?)"
                                                           r"(?: (?:Ar|Op|Oo|Fl)\b.*)?$",
                                                           line)):
            name = m.group(1).strip()
            items[name] = ""
        if name is not None:
            items[name] += line + "\n"
    return items


def mdoc_flag(opt: str) -> str:
    """How the page writes an option: --json is `Fl -json`, -q is `Fl q`."""
    return f"Fl {opt[1:]}"


def mentions(text: str, opt: str) -> bool:
    return re.search(rf"\b{re.escape(mdoc_flag(opt))}(?![\w-])", text) is not None


def test_the_command_list_is_read_from_the_page() -> None:
    items = command_items()
    assert {"check", "serve", "repair", "demo break", "demo run"} <= set(items)
    assert "Fl -textfile Ar path" in items["check"]
    assert "Fl -interval" not in items["check"]


COMMANDS = commands(main_group)


def test_the_cli_has_the_commands_the_page_is_checked_for() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"check", "serve", "repair", "sessions", "demo break"} <= names
    assert "collect" not in names  # hidden: serve's child, not for people


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_is_in_the_page(path: tuple[str, ...],
                                                  cmd: click.Command) -> None:
    items = command_items()
    name = " ".join(path)
    assert name in items, f"`{name}` is not in the man page's command list"
    for opt in options(cmd):
        for spelling in opt.opts + opt.secondary_opts:
            assert mentions(items[name], spelling), f"`{name} {spelling}` is not in the man page"
        if not opt.is_flag and not opt.count:
            # an option with a value is followed by its argument
            assert re.search(rf"{re.escape(mdoc_flag(opt.opts[-1]))} Ar \w+", items[name]), \
                f"`{name} {opt.opts[-1]}` has no Ar argument in the man page"
    if any(isinstance(p, click.Argument) for p in cmd.params):
        assert "Ar " in items[name], name


def test_every_global_option_is_in_the_page() -> None:
    description = page()[page().index(".Sh DESCRIPTION"):page().index(
        "The commands are as follows:")]
    ctx = click.Context(main_group)
    params = [*options(main_group), main_group.get_help_option(ctx)]
    for opt in params:
        assert opt is not None
        for spelling in opt.opts + opt.secondary_opts:
            assert mentions(description, spelling), f"global {spelling} is not in the man page"


def test_the_synopsis_names_the_global_options() -> None:
    synopsis = page()[page().index(".Sh SYNOPSIS"):page().index(".Sh DESCRIPTION")]
    for opt in ("--config", "--demo", "--demo-state", "--snapshot", "--version"):
        assert mentions(synopsis, opt), opt


# -- installed with the package -----------------------------------------------------

def test_pyproject_installs_the_page_in_man8() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^"share/man/man8" = \["man/obsdvpn-agent\.8"\]$', text, re.MULTILINE), \
        "pyproject.toml [tool.setuptools.data-files] must install the page"
