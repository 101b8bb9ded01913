"""Evaluation: judge the gathered facts against the configuration.

evaluate(facts, config) -> tuple[Result, ...], a pure function.  Each Result
has a stable id `area.what` (also a metric label value, a CLI argument and an
alert selector), a status, one sentence that leads to the problem and names
the fix, the values it judged (what metrics and `check --json` show), and the
repair actions that would fix it, or why repair leaves it alone.  Metrics,
reports and repair only format, order and apply these Results: every
judgment lives here, once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts

    # The daemon log's judgments (why, history, offenders), for the commands that
    # ask them: imported on first use (__getattr__ below), so `check` and the
    # exporter never compile the log patterns they do not read.
    from .attempts import Stitched, WhyAnswer, history, offenders, stitch, why

_LOG_JUDGMENTS = frozenset({"Stitched", "WhyAnswer", "history", "offenders", "stitch", "why"})


def __getattr__(name: str) -> object:
    if name in _LOG_JUDGMENTS:
        from . import attempts
        return getattr(attempts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Status(enum.IntEnum):
    """Values are the Nagios plugin exit codes."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        # OK < UNKNOWN < WARNING < CRITICAL: an UNKNOWN probe never hides a real CRITICAL.
        return {0: 0, 3: 1, 1: 2, 2: 3}[self.value]


# What a check judged: numbers and flags for metrics, text for people.  None
# means "judged, but could not be read" and is never exported as a number.
Value = bool | int | float | str | None


# Repair applies actions in phases, whatever order the checks ran in: kernel
# state and files first, then the daemons (each: enable, flags, start, load its
# policy), then boot-time services, then pf, which must not cut the VPN off
# while the daemons are down.
PHASE_SYSCTL = 10
PHASE_FILES = 20
PHASE_DAEMONS = 30
PHASE_BOOT = 60
PHASE_PF = 70


@dataclass(frozen=True)
class Action:
    """One change repair may make, built by the check that wants it."""

    check: str                       # the check it fixes
    what: str                        # one line for people
    before: str
    after: str
    argv: tuple[str, ...] = ()       # the command it runs (empty for file edits)
    validate: tuple[str, ...] = ()   # run first; a non-zero exit refuses the action
    path: str = ""                   # file edits: the file
    mode: int | None = None          # chmod target
    sysctl: tuple[str, str] | None = None   # persist name=value in sysctl.conf
    owner_root: bool = False         # chown root (narrows who can touch it)
    needs_isakmpd: bool = False      # skipped unless isakmpd runs by then
    # Planned only when repair is asked for this check by name (`--only`): a
    # change the admin may not have chosen yet, such as loading an edited pf.conf.
    when_named: bool = False
    order: tuple[int, ...] = (PHASE_BOOT,)  # repair sorts by this, stably

    @property
    def shown(self) -> str:
        if self.argv:
            return " ".join(self.argv)
        if self.mode is not None:
            return f"chmod {self.mode:o} {self.path}"
        if self.owner_root:
            return f"chown root {self.path}"
        if self.sysctl:
            return f"edit {self.path}: {self.sysctl[0]}={self.sysctl[1]}"
        return self.what

    @property
    def change(self) -> tuple[object, ...]:
        """What it does, whichever check asked: two equal changes are one action."""
        return (self.argv, self.path, self.mode, self.sysctl, self.owner_root)


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    summary: str
    values: Mapping[str, Value] = field(default_factory=dict, hash=False)
    actions: tuple[Action, ...] = ()
    # Why repair does not (fully) fix it; empty: the actions are the fix, or,
    # with no actions, the summary says why.
    repair_note: str = ""


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


def observed_note(observed_at: float | None, now: float) -> str:
    """For the unprivileged serve, judging from root's record: how old that look is."""
    if observed_at is None:
        return ""
    return f" (as root's check saw it {max(0.0, now - observed_at) / 60:.0f} min ago)"


def evaluate(facts: Facts, cfg: Config) -> tuple[Result, ...]:
    from . import daemons, files, ipsec, pf, sessions, sysctl

    results: list[Result] = []
    for area in (sysctl, daemons, pf, ipsec, sessions, files):
        results.extend(area.evaluate(facts, cfg))
    return tuple(results)


def by_id(results: Iterable[Result]) -> dict[str, Result]:
    return {r.check: r for r in results}


def check_ids(cfg: Config) -> tuple[str, ...]:
    """Every check id this configuration produces, in report order.

    Each check yields exactly one result whatever the facts, so judging a
    host of which nothing is known lists them all, without a second list
    to keep in step with the check functions.
    """
    from ..probes import ProbeFailure, unknown_facts

    facts = unknown_facts(cfg, ProbeFailure("check_ids", "error", "not collected"))
    return tuple(r.check for r in evaluate(facts, cfg))


Results = Iterator[Result]


__all__ = ["PHASE_BOOT", "PHASE_DAEMONS", "PHASE_FILES", "PHASE_PF", "PHASE_SYSCTL", "Action",
           "Result", "Results", "Status", "Stitched", "Value", "WhyAnswer", "by_id",
           "check_ids", "evaluate", "history", "observed_note", "offenders", "stitch", "why",
           "worst"]
