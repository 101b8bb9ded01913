"""Parsers of what isakmpd(8) says about itself: its flags and its FIFO answers.

    $ rcctl get isakmpd flags          $ echo 'C get [Phase 2]:Passive-Connections' \\
    -K -v                                  > /var/run/isakmpd.fifo
                                       $ cat /var/run/isakmpd.result
                                       from-192.0.2.1=17-to-0.0.0.0/0=17:1701

Flags, as read in openbsd/src sbin/isakmpd/isakmpd.c rev 1.109 parse_args():
getopt(3) with `"46ac:dD:f:i:KnN:p:Ll:R:STv"`, so `c D f i N p l R` take an
argument, glued (`-fK`) or as the next word (`-f K`).  `-vfK` is therefore
`-v` and `-f K` (a FIFO named "K"), and does NOT set `-K`; `-DA=10` is `-D`
with argument `A=10`.  A word left after the options makes isakmpd print its
usage and exit (`if (argc > 0) usage();`), and so does an unknown letter.

FIFO answers, as read in sbin/isakmpd/ui.c rev 1.58 ui_config(): `C get
[SECTION]:TAG` writes the value alone, `"%s\\n"`, to /var/run/isakmpd.result
(truncated first; a tag that is not set leaves the file empty).  ipsecctl
(sbin/ipsecctl/ike.c rev 1.85 ike_connect()) adds each passive rule's phase-2
name with `C add [Phase 2]:Passive-Connections=NAME`, and ui_config() joins
the names of a list with `,` (`"%s,%s"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import GetoptError, ParseError, getopt

# isakmpd.c rev 1.109 parse_args().
GETOPT = "46ac:dD:f:i:KnN:p:Ll:R:STv"
# ike.c ike_setup_ids(): `from-%s%s%s-to-%s%s%s` of addresses, `=proto` and
# `:port` numbers (or `from-secN-to-secN`): no blank, no comma.
_CONNECTION = re.compile(r"[A-Za-z0-9_.:/=\-]{1,200}")


@dataclass(frozen=True)
class IsakmpdOptions:
    """isakmpd's options as its getopt(3) reads them.

    options keeps every option in order with its argument ('' for a plain
    letter): `-K -v -f /tmp/f` is (('K', ''), ('v', ''), ('f', '/tmp/f')).
    """

    flags: str
    options: tuple[tuple[str, str], ...]

    @property
    def letters(self) -> frozenset[str]:
        return frozenset(letter for letter, _ in self.options)

    def argument(self, letter: str) -> str | None:
        """The last argument given to LETTER (getopt keeps the last), or None."""
        values = [value for opt, value in self.options if opt == letter]
        return values[-1] if values else None


def parse_flags(flags: str, command: str = "rcctl get isakmpd flags") -> IsakmpdOptions:
    """Read isakmpd flags (`-K -v`, `-Kv`, `-vfK`) the way isakmpd's getopt does.

    rc.d passes ${daemon_flags} unquoted to the shell, so words are split on
    blanks; an unknown letter, a missing argument or a word after the options
    is a ParseError naming the flags: isakmpd itself would refuse to start.
    """
    try:
        options, operands = getopt(flags.split(), GETOPT)
    except GetoptError as e:
        raise ParseError(command, f"{e} (isakmpd's getopt \"{GETOPT}\")", None, flags) from None
    if operands:
        raise ParseError(command, f"`{operands[0][:40]}` is not an option: isakmpd takes no "
                                  "operands and would print its usage", None, flags)
    return IsakmpdOptions(flags, tuple(options))


def has_option(opts: IsakmpdOptions, letter: str) -> bool:
    """Whether LETTER was given as an option (not as the argument of another)."""
    return letter in opts.letters


def parse_passive_connections(text: str,
                              command: str = "C get [Phase 2]:Passive-Connections"
                              ) -> tuple[str, ...]:
    """The passive connection names in isakmpd's result file: () when it is empty.

    An empty file is what isakmpd writes for a tag that is not set: no
    passive connection (after `rcctl restart isakmpd` without `ipsecctl -f`).
    """
    if text == "":
        return ()
    if not text.endswith("\n") or text.count("\n") != 1:
        raise ParseError(command, "expected one line ending in a newline "
                                  "(ui.c ui_config(): \"%s\\n\")", 1, text)
    value = text[:-1]
    names = tuple(name.strip() for name in value.split(","))
    # ui_config() strips a trailing comma only when adding; a value set by
    # hand may still end in one.
    names = tuple(name for name in names if name)
    if not names:
        raise ParseError(command, "a value of only commas", 1, text)
    for name in names:
        if not _CONNECTION.fullmatch(name):
            raise ParseError(command, "not a connection name as ipsecctl makes them", 1, name)
    return names


def parse_phase1_default(text: str, command: str = "C get [Phase 1]:Default") -> str | None:
    """The section `[Phase 1]:Default` names, or None when it is not set (empty file).

    `peer-default` is what ipsecctl sets for an ike rule without `peer`
    (ike.c ike_section_peer()); isakmpd's own built-in value after a restart
    without `ipsecctl -f` is `Default-phase-1` (conf.c conf_load_defaults()).
    """
    if text == "":
        return None
    if not text.endswith("\n") or text.count("\n") != 1 or not _CONNECTION.fullmatch(text[:-1]):
        raise ParseError(command, "expected one section name and a newline", 1, text)
    return text[:-1]
