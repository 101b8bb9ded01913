"""The demo host: a simulated OpenBSD 7.6 L2TP/IPsec VPN host (isakmpd, npppd, pf).

It answers every command the agent runs in the real commands' output
formats, changes its state the way OpenBSD would when repair or an admin
runs a command, and keeps that state in one JSON file shared by separate
processes (see state.py).

    host = DemoHost(default_state_path())
    host.run(("/sbin/pfctl", "-si"), timeout_s=5).stdout
    # Status: Enabled for 3 days 04:17:00              Debug: err ...

Modules: state (file, locking), services (rc.conf), daemons (rc.d),
sessions (clients), pfconf and ipsecconf (config readers), render (output
formats), commands (argv dispatch), events (boot, crash, connect, break).
"""

from .events import SCENARIOS, EventError
from .host import DemoHost
from .state import DemoStateError, default_state_path

__all__ = ["SCENARIOS", "DemoHost", "DemoStateError", "EventError", "default_state_path"]
