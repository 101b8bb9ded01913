"""Evaluation: judge the gathered facts against the configuration.

evaluate(facts, config) -> tuple[Result, ...], a pure function.  Each Result
has a stable id `area.what` (also a metric label value, a CLI argument and an
alert selector), a status and one sentence that leads to the problem and names
the fix.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable


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


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    summary: str


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


def evaluate(facts, cfg) -> tuple[Result, ...]:
    from . import daemons, files, ipsec, pf, sessions, sysctl

    results: list[Result] = []
    for area in (sysctl, daemons, pf, ipsec, sessions, files):
        results.extend(area.evaluate(facts, cfg))
    return tuple(results)


def check_ids(cfg) -> tuple[str, ...]:
    """Every check id this configuration produces, in report order.

    Each check yields exactly one result whatever the facts, so judging a
    host of which nothing is known lists them all, without a second list
    to keep in step with the check functions.
    """
    from ..probes import Facts, ProbeFailure

    unknown = ProbeFailure("check_ids", "error", "not collected")
    facts = Facts(collected_at=0.0, sysctl=unknown, sysctl_conf=unknown, rc_on=unknown,
                  daemon_flags={}, daemon_check={}, processes=unknown, pf_info=unknown,
                  pf_limits=unknown, pf_rules=unknown, pf_config=unknown, ipsec=unknown,
                  interfaces=unknown, sessions=unknown, files={}, npppd_users=unknown)
    return tuple(r.check for r in evaluate(facts, cfg))
