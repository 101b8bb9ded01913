"""Where the outcome of the last repair is kept, so serve and textfiles can show it.

A small JSON file written by `repair`: {"time": ..., "exit_code": N,
"actions": {"applied": N, "failed": N, "skipped": N}}.  It lives next to the
demo state for the demo host, and in /var/db/obsdvpn-agent on a real one.
"""

from __future__ import annotations

import json
import os

LOCAL_PATH = "/var/db/obsdvpn-agent/last-repair.json"
LOCAL_LOCK = "/var/run/obsdvpn-agent.repair.lock"


def repair_state_path(app) -> str | None:
    if app.snapshot:
        return None
    if app.demo or app.demo_state:
        from .host.demo import default_state_path
        state = app.demo_state or default_state_path()
        return str(state) + ".last-repair.json"
    return LOCAL_PATH


def load_repair_state(app) -> dict | None:
    path = repair_state_path(app)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def repair_lock_path(app) -> str:
    if app.demo or app.demo_state:
        from .host.demo import default_state_path
        return str(app.demo_state or default_state_path()) + ".repair.lock"
    return LOCAL_LOCK


def save_repair_state(app, state: dict) -> None:
    path = repair_state_path(app)
    if path is None:
        return
    from .host.atomic import replace_file
    # dirname("last-repair.json") is "": the current directory, nothing to make.
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    replace_file(path, (json.dumps(state, sort_keys=True) + "\n").encode(), 0o644)
