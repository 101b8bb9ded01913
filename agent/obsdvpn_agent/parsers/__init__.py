"""Parsers of OpenBSD command output: one module per command, pure functions.

Every parser takes the text a command printed and returns frozen records, or
raises ParseError naming the command and the line at fault.  A parser never
returns a made-up zero for a field it could not read.
"""

from __future__ import annotations


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
