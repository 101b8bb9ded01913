"""Who the agent runs as: the name doas.conf(5) rules and messages use."""

from __future__ import annotations

import os
import pwd


def effective_user() -> str:
    """The effective user's name, or its uid when the passwd database has none."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
