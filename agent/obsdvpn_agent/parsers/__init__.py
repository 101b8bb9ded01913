"""Parsers of OpenBSD command output: one module per command, pure functions.

Every parser takes the text a command printed and returns frozen records, or
raises ParseError naming the command and the line at fault.  A parser never
returns a made-up zero for a field it could not read.
"""

from __future__ import annotations

import re


class ParseError(ValueError):
    """Output that does not have the layout OpenBSD's source prints."""

    def __init__(self, command: str, reason: str, lineno: int | None = None,
                 line: str | None = None) -> None:
        self.command = command
        self.reason = reason
        self.lineno = lineno
        self.line = line
        super().__init__(command, reason, lineno, line)

    def __str__(self) -> str:
        where = f", line {self.lineno}" if self.lineno is not None else ""
        # The offending text is shown cut short: enough to find it, never a whole key.
        shown = f": {self.line.strip()[:80]!r}" if self.line is not None else ""
        return f"`{self.command}` output{where}: {self.reason}{shown}"


# Every number OpenBSD prints is a %u, %lu or %llu (or a small %d): at most a
# u_int64, which prints in at most 20 digits, all ASCII.  Python is laxer:
# \d, str.isdigit() and int() also take '١٢٣', '０' or '²', and int() of more
# than 4300 digits raises a plain ValueError.  So printed numbers are matched
# with UNSIGNED (or [0-9]) and converted by unsigned(), never by int() alone.
UNSIGNED = re.compile(r"[0-9]{1,20}")


def unsigned(text: str, command: str, lineno: int | None = None,
             line: str | None = None) -> int:
    """TEXT as a number OpenBSD prints, or ParseError naming the command and line."""
    if UNSIGNED.fullmatch(text) is None:
        raise ParseError(command, "expected a number of 1 to 20 digits 0-9 (u_int64)",
                         lineno, line)
    return int(text)


# C0 and C1 controls, DEL, and the bidi overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def first_line(text: str, limit: int = 200) -> str:
    """The first non-blank line of a command's message, cut short, printable.

    A reason is one line (it becomes a check summary or a log line); the
    first line of a tool's complaint is the one that names the problem.
    Host output is not trusted to be text for a terminal: control characters
    (an escape sequence in a replayed stderr) come out escaped, `\\x1b`.
    """
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")[:limit]
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], line)


def refuse_nul(text: str, command: str) -> None:
    """ParseError when output holds a NUL byte: cut short or not text, never to be judged.

    (`rcctl get isakmpd flags` printing `-K\\0-v` is not the flags `-K`.)
    """
    if "\0" in text:
        lineno = text.count("\n", 0, text.index("\0")) + 1
        raise ParseError(command, "NUL byte in the output: cut short or not text", lineno)


class GetoptError(ValueError):
    """What getopt(3) would complain about: an unknown option or a missing argument."""


def getopt(args: list[str], spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    """getopt(3) over words: (letter, argument or "") pairs in order, and the operands.

    `spec` is getopt's optstring ("46ac:dD:f:..."): a letter followed by `:`
    takes an argument, glued (`-DA=10`) or the next word (`-f K`); `--` ends
    the options, as does the first word that is not one.
    """
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            i += 1
            break
        j = 1
        while j < len(args[i]):
            letter = args[i][j]
            pos = spec.find(letter)
            if pos < 0 or letter == ":":
                raise GetoptError(f"no option -{letter}")
            if pos + 1 < len(spec) and spec[pos + 1] == ":":
                value = args[i][j + 1:]
                if not value:
                    i += 1
                    if i >= len(args):
                        raise GetoptError(f"option -{letter} needs an argument")
                    value = args[i]
                opts.append((letter, value))
                break
            opts.append((letter, ""))
            j += 1
        i += 1
    return opts, args[i:]
