"""Reader of /etc/npppd/npppd-users, the npppd(8) LOCAL user database.

    taro:\\
        :password=taro's password:\\
        :framed-ip-address=192.168.0.101:

npppd-users(5) (rev 1.9): a cgetent(3) file, one record per user, whose
record name is the username; attributes password, framed-ip-address,
framed-ip-netmask and calling-number.  npppd reads it in its privileged
process (privsep.c PRIVSEP_GET_USER_INFO: cgetent() on the username, then
cgetstr() per attribute).

Record rules, as read in openbsd/src lib/libc/gen/getcap.c getent():
a newline right after a backslash joins the next physical line (its leading
blanks kept); a joined line that is empty or starts with `#` is skipped (so
`#taro:\\` comments out its continuation lines too); the name field runs to
the first `:` and holds names separated by `|`, each of which cgetmatch()
accepts as the username.  cgetstr() ends a value at the first `:`
(`\\:` is no escape there; `\\072` is).

This module keeps no password: parse_usernames() returns names only, its
ParseErrors carry line numbers but never line text, and redact() is for
support snapshots.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import ParseError


def _records(text: str, path: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, logical line) per getent() record line."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        start, logical = i + 1, lines[i]
        while logical.endswith("\\") and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + lines[i]
        i += 1
        if "\r" in logical:
            # getent() sees `\r` before the newline, so no continuation works.
            raise ParseError(path, "carriage return (DOS line ending): records do not join",
                             start)
        if logical.strip() == "" or logical.startswith("#"):
            # Exactly empty and `#` lines are getent()'s; a blank-only line
            # would be a record no username matches.
            continue
        yield start, logical


def parse_usernames(text: str, path: str = "/etc/npppd/npppd-users") -> tuple[str, ...]:
    """The usernames of npppd-users(5), in file order, each once.

    A `|` alias is a username too (cgetmatch() matches any of them); of a
    name listed twice npppd uses the first record, as getent() stops there.
    """
    # A dict keeps insertion order and finds a name in O(1): a list's `in`
    # made this quadratic (1.9 s for 20,000 users).
    names: dict[str, None] = {}
    for lineno, record in _records(text, path):
        field = record.split(":", 1)[0]
        for name in field.split("|"):
            if not name or name != name.strip():
                raise ParseError(path, "record name is empty or has blanks around it "
                                       "(a line missing its `\\` continuation?)", lineno)
            if "=" in name:
                raise ParseError(path, "record name holds `=`: an attribute line missing "
                                       "its leading `:` or its `\\` continuation?", lineno)
            names.setdefault(name)
    return tuple(names)


def redact(text: str) -> str:
    """The file text with the value of every field naming a password replaced by REDACTED.

    Redacts what getent() would see: backslash-newlines are joined first, so
    a name or value split over lines (`:passw\\` then `ord=SECRET:`) is
    caught, then every `:`-separated field whose name holds "password" (any
    case, blanks ignored: more than cgetstr() would read, never less) loses
    its value.  Commented-out records are redacted too.  Each physical line
    is kept, so line numbers stay true: the continuations inside a redacted
    field follow its REDACTED.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        group = [lines[i]]
        while group[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            group.append(lines[i])
        i += 1
        out.append(_redact_record(group))
    return "\n".join(out)


def _redact_record(group: list[str]) -> str:
    """One getent() record, given as its physical lines, redacted."""
    parts = [line[:-1] for line in group[:-1]] + [group[-1]]
    logical = "".join(parts)
    breaks: dict[int, int] = {}    # logical offset -> backslash-newlines before it
    offset = 0
    for part in parts[:-1]:
        offset += len(part)
        breaks[offset] = breaks.get(offset, 0) + 1
    spans: dict[int, tuple[int, str]] = {}   # field start -> (field end, replacement)
    start = 0
    for field in logical.split(":"):
        # Field 0, the record name, too: an attribute line that lost its `:`.
        name, eq, _ = field.partition("=")
        if eq and "password" in "".join(name.split()).lower():
            spans[start] = (start + len(field), name + "=REDACTED")
        start += len(field) + 1
    pieces = []
    j = 0
    while True:
        pieces.append("\\\n" * breaks.get(j, 0))
        if j >= len(logical):
            break
        if j in spans:
            end, replacement = spans[j]
            pieces.append(replacement)
            pieces.append("\\\n" * sum(breaks.get(b, 0) for b in range(j + 1, end)))
            j = end
            continue
        pieces.append(logical[j])
        j += 1
    return "".join(pieces)
