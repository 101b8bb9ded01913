"""One collection of the daemon log for the metrics: read the new lines, add them
to the kept totals, keep both.  The collector calls collect_log_counts() once per
collection; the position and totals survive restarts in one state file.

    counts, ok, notes = collect_log_counts(host, "/var/log/daemon",
                                           "/var/db/obsdvpn-agent/log-state.json", users)
"""

from __future__ import annotations

import time
from datetime import datetime

from .checks.attempts import LogCounts, update_counts
from .host import logfile
from .host.base import Host, HostError
from .parsers.syslog import parse_lines

LOCAL_STATE_PATH = "/var/db/obsdvpn-agent/log-state.json"
DAEMON_LOG = "/var/log/daemon"


def collect_log_counts(host: Host | None, log_path: str, state_path: str,
                       known_users: list[str] | tuple[str, ...],
                       now: float | None = None) -> tuple[LogCounts, bool, tuple[str, ...]]:
    """(totals, read success, notes).  host None (or a local host): the file is read
    directly with its identity; a demo or snapshot host gives the file as text."""
    state = logfile.load_state(state_path)
    previous = LogCounts.from_dict(state.totals)
    reference = datetime.fromtimestamp(now if now is not None else time.time())
    try:
        if host is None or host.label == "local":
            result = logfile.read_new_lines(log_path, state.position)
            lines, position, notes = result.lines, result.position, result.notes
            if position is None:
                return previous, False, notes
        else:
            text, position = logfile.new_text(host.read_file(log_path), state.position)
            lines, notes = tuple(text.splitlines()), ()
    except (OSError, HostError) as e:
        return previous, False, (f"{log_path}: {getattr(e, 'strerror', None) or e}",)
    counts = update_counts(previous, parse_lines(lines, reference), known_users)
    try:
        logfile.save_state(state_path, logfile.LogState(position, counts.to_dict()))
    except OSError as e:
        # Not kept: the same lines are counted again next time, from the same totals.
        return counts, True, notes + (
            f"{state_path}: cannot keep the log position: {e.strerror}",)
    return counts, True, notes
