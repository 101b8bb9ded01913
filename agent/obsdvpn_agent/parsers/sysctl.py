"""Parsers of sysctl(8) output and of /etc/sysctl.conf.

    $ sysctl net.inet.ip.forwarding net.pipex.enable net.inet.ip.nosuch
    net.inet.ip.forwarding=1
    net.pipex.enable=0
    sysctl: third level name nosuch in net.inet.ip.nosuch is invalid   (stderr)

    # sysctl net.pipex.enable=1
    net.pipex.enable: 0 -> 1

Formats, as read in openbsd/src sbin/sysctl/sysctl.c rev 1.268 (2025/08/06):
parse() prints a read as `printf("%s%s", string, equ)` (equ is "=") then the
value (`%d\\n` for integers, puts() for strings, so a string holding newlines,
like kern.version, goes on over indented lines).  A write prints
`"%s: %d -> "` then `"%d\\n"` (strings: `"%s: "`, old, `" -> "`, new).
Errors are warnx(3) lines on stderr, prefixed `sysctl: `: findname() says
`"%s level name %s in %s is invalid"` (level top/second/third; helpers also
say `fourth level name ...`), parse() says `"name %s in %s is unknown"`,
`"%s: value is not available"` (EOPNOTSUPP), `"%s: specification is
incomplete"`, `"%s: type is unknown to this program"` and warn(3)
`"%s: <strerror>"` (e.g. `Operation not permitted` for a write as a user).
A warnx() does not change the exit status: main() ends with `return (0)`, so
a name that does not exist is reported on stderr only.

/etc/sysctl.conf is applied by /etc/rc's sysctl_conf().  Up to OpenBSD 7.7
rc fed each line through stripcom (`_line=${_line%%#*}`, then `read` drops
leading and trailing blanks) to `sysctl "$_line"`; etc/rc rev 1.586
(2025/09/17) runs `sysctl -f /etc/sysctl.conf` instead, where main() cuts
each line at the first blank, tab or `#` (`strcspn(line, " \\t\\n#")`).
Both apply the assignments in file order, so the last one of a name wins,
and both ignore or break a line with a blank around `=` or inside the value,
so parse_conf() refuses such lines instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import ParseError, first_line, refuse_nul

# MIB names are dotted components of letters, digits and underscores
# (CTL_*_NAMES in sys/sysctl.h and friends).
_NAME = r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*"
_READ = re.compile(rf"({_NAME})=(.*)")
_WRITE = re.compile(rf"({_NAME}): (.*?) -> (.*)")
_CONF_ASSIGNMENT = re.compile(rf"({_NAME}\.[A-Za-z0-9_]+)=(\S+)")
# findname(): "%s level name %s in %s is invalid"; sysctl_forkstat() and
# sysctl_nchstats(): "fourth level name in %s is invalid"; parse():
# "name %s in %s is unknown".
_UNKNOWN_NAME = re.compile(r"sysctl: (?:(?:top|second|third|fourth) level name(?: .*)?"
                           r" in (\S+) is invalid|name .* in (\S+) is unknown)")


@dataclass(frozen=True)
class SysctlReading:
    """What `sysctl NAME ...` printed: values, names it does not know, other errors."""

    values: tuple[tuple[str, str], ...]   # (name, value as printed), in output order
    unknown: tuple[str, ...]              # full names sysctl reported as invalid
    errors: tuple[str, ...]               # other stderr lines: `sysctl: X: value is not available`
    unknown_lines: int = 0

    def get(self, name: str) -> str | None:
        for key, value in self.values:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class SysctlChange:
    """One line of `sysctl NAME=VALUE`: `net.pipex.enable: 0 -> 1`."""

    name: str
    old: str
    new: str


@dataclass(frozen=True)
class SysctlConfEntry:
    """One effective `name=value` line of sysctl.conf(5)."""

    name: str
    value: str
    lineno: int


@dataclass(frozen=True)
class SysctlConf:
    """The assignments of /etc/sysctl.conf, in file order."""

    path: str
    entries: tuple[SysctlConfEntry, ...]

    def get(self, name: str) -> str | None:
        """The value /etc/rc leaves the name at: the last assignment wins."""
        value = None
        for entry in self.entries:
            if entry.name == name:
                value = entry.value
        return value


def parse_get(stdout: str, stderr: str = "", command: str = "sysctl") -> SysctlReading:
    """Parse `sysctl NAME1 NAME2 ...` (stdout `name=value` lines, stderr warnings)."""
    refuse_nul(stdout, command)
    values: list[tuple[str, str]] = []
    for lineno, line in enumerate(stdout.splitlines(), 1):
        m = _READ.fullmatch(line)
        if m:
            values.append((m.group(1), m.group(2)))
        elif values and (line == "" or line[0] in " \t"):
            # A string value with newlines (kern.version) goes on over
            # indented lines; puts() adds a final empty one.
            name, value = values[-1]
            values[-1] = (name, f"{value}\n{line}")
        else:
            raise ParseError(command, "expected a `name=value` line", lineno, line)
    values = [(name, value.rstrip("\n")) for name, value in values]

    unknown: list[str] = []
    errors: list[str] = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _UNKNOWN_NAME.fullmatch(line)
        if m:
            unknown.append(m.group(1) or m.group(2))
        else:
            errors.append(first_line(line))  # shown in summaries: control characters escaped
    return SysctlReading(tuple(values), tuple(unknown), tuple(errors))


def parse_value(stdout: str, command: str = "sysctl -n") -> str:
    """Parse `sysctl -n NAME` for one single-line name: the value alone, `1`."""
    refuse_nul(stdout, command)
    lines = stdout.splitlines()
    if len(lines) != 1 or not lines[0].strip():
        raise ParseError(command, f"expected one value line, got {len(lines)} line(s)")
    if lines[0].startswith("sysctl: "):
        raise ParseError(command, "sysctl's warning instead of a value", 1, lines[0])
    return lines[0]


def parse_set(stdout: str, command: str = "sysctl") -> tuple[SysctlChange, ...]:
    """Parse `sysctl NAME=VALUE ...`: one `name: old -> new` line per write.

    Empty output is valid: `-q`, or every write failed (the reasons are on
    stderr, which the caller judges).
    """
    refuse_nul(stdout, command)
    changes = []
    for lineno, line in enumerate(stdout.splitlines(), 1):
        m = _WRITE.fullmatch(line)
        if not m:
            raise ParseError(command, "expected a `name: old -> new` line", lineno, line)
        changes.append(SysctlChange(*m.groups()))
    return tuple(changes)


def _conf_assignment(line: str, path: str, lineno: int) -> tuple[str, str] | None:
    """(name, value) of one sysctl.conf line, None for a comment or blank line."""
    text = line.split("#", 1)[0].strip(" \t")
    if not text:
        return None
    m = _CONF_ASSIGNMENT.fullmatch(text)
    if m:
        return m.group(1), m.group(2)
    if "\r" in text:
        reason = "carriage return (DOS line ending): sysctl rejects the value"
    elif "=" not in text:
        reason = "not a `name=value` assignment"
    elif re.search(r"[ \t]=|=[ \t]", text):
        reason = "blank around `=`: /etc/rc does not set this"
    elif text.endswith("="):
        reason = "no value after `=`"
    elif re.search(r"\s", text):
        reason = "blank inside the value: /etc/rc applies it differently across releases"
    else:
        reason = "not a sysctl name"
    raise ParseError(path, reason, lineno, line)


def parse_conf(text: str, path: str = "/etc/sysctl.conf") -> SysctlConf:
    """Parse sysctl.conf(5): `name=value` lines, `#` comments, blank lines.

        net.inet.ip.forwarding=1	# 1=Permit forwarding (routing) of IPv4 packets
    """
    refuse_nul(text, path)
    entries = []
    for lineno, line in enumerate(text.split("\n"), 1):
        found = _conf_assignment(line, path, lineno)
        if found:
            entries.append(SysctlConfEntry(found[0], found[1], lineno))
    return SysctlConf(path, tuple(entries))


def set_conf_value(text: str, name: str, value: str) -> str:
    """The sysctl.conf text with `name=value` in force, every other byte kept.

    The last effective `name=` line is rewritten in place (its indentation
    and trailing comment stay); earlier lines of the same name are left
    alone, because /etc/rc applies the file in order and the last one wins.
    Commented-out lines (`#net.pipex.enable=1`) are comments and stay too.
    Without such a line, `name=value` is appended.  Text parse_conf() cannot
    read raises ParseError: repair does not edit a file it does not understand.
    """
    if not re.fullmatch(rf"{_NAME}\.[A-Za-z0-9_]+", name):
        raise ValueError(f"not a sysctl name: {name!r}")
    if not re.fullmatch(r"[^\s#]+", value):
        raise ValueError(f"not a sysctl.conf value (blank, '#' or empty): {value!r}")
    conf = parse_conf(text)
    lines = text.split("\n")
    mine = [e for e in conf.entries if e.name == name]
    if not mine:
        sep = "" if text == "" or text.endswith("\n") else "\n"
        return f"{text}{sep}{name}={value}\n"
    last = mine[-1]
    if last.value == value:
        return text
    line = lines[last.lineno - 1]
    start = line.index(f"{name}=")
    end = start + len(name) + 1 + len(last.value)
    lines[last.lineno - 1] = f"{line[:start]}{name}={value}{line[end:]}"
    return "\n".join(lines)
