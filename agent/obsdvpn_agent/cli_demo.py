"""`obsdvpn-agent demo ...`: play with the simulated OpenBSD VPN host.

The main CLI registers this group (`main.add_command(demo)`) and puts the
global `--demo-state FILE` on its context object as `demo_state` (None for
the default path).  Every command here is one short process that changes the
shared state file, so `serve`, `check` and `repair` running elsewhere see the
change at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click

from .host.base import HostError
from .host.demo import SCENARIOS, DemoHost, EventError, default_state_path, events
from .host.demo.state import State

ERROR_EXIT = 3
MAX_STDIN_BYTES = 1024 * 1024


def _state_path(ctx: click.Context) -> Path:
    obj = ctx.find_root().obj
    path = getattr(obj, "demo_state", None)
    return Path(path) if path else default_state_path()


def _host(ctx: click.Context) -> DemoHost:
    return DemoHost(_state_path(ctx))


def _fail(message: str) -> NoReturn:
    click.echo(f"obsdvpn-agent demo: {message}", err=True)
    sys.exit(ERROR_EXIT)


def _event(ctx: click.Context, change: Callable[[State, float], str]) -> None:
    """Apply one event under the state file's write lock and say what happened."""
    host = _host(ctx)
    failed = None
    try:
        with host.store.change() as state:
            try:
                message = change(state, time.time())
            except events.LoggedFailure as exc:  # the daemons logged it: keep the state
                failed = str(exc)
    except (EventError, HostError) as exc:
        _fail(str(exc))
    if failed is not None:
        _fail(failed)
    click.echo(message)


@click.group()
def demo() -> None:
    """Drive the simulated OpenBSD L2TP/IPsec host (the one --demo watches).

    Its state file is --demo-state FILE or
    $XDG_STATE_HOME/obsdvpn-agent/demo-state.json; it is created healthy on
    first use.
    """


@demo.command(context_settings={"ignore_unknown_options": True,
                                "allow_interspersed_args": False})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, required=True)
@click.pass_context
def run(ctx: click.Context, argv: tuple[str, ...]) -> None:
    """Run one OpenBSD admin command as root on the simulated host.

    Example: obsdvpn-agent demo run -- rcctl stop isakmpd
    """
    host = _host(ctx)
    try:
        result = host.run(argv, timeout_s=30)
    except HostError as exc:
        _fail(str(exc))
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


@demo.command()
@click.argument("path")
@click.pass_context
def write(ctx: click.Context, path: str) -> None:
    """Replace a simulated file (/etc/pf.conf, /etc/ipsec.conf, ...) with stdin.

    Owner and mode stay; nothing is loaded until you load it, as on OpenBSD:

        obsdvpn-agent demo write /etc/pf.conf < my-pf.conf
        obsdvpn-agent demo run -- pfctl -nf /etc/pf.conf
        obsdvpn-agent demo run -- pfctl -f /etc/pf.conf
    """
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        _fail(f"{path}: more than {MAX_STDIN_BYTES} bytes on stdin")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"{path}: stdin is not UTF-8 text (byte {exc.start})")
    host = _host(ctx)
    try:
        message = host.write_simulated(path, text)
    except HostError as exc:
        _fail(str(exc))
    click.echo(message)


@demo.command()
@click.pass_context
def reboot(ctx: click.Context) -> None:
    """Reboot: sysctl.conf, pf.conf, enabled daemons, ipsec.conf; sessions drop."""
    _event(ctx, events.reboot)


@demo.command()
@click.argument("daemon")
@click.pass_context
def crash(ctx: click.Context, daemon: str) -> None:
    """Kill a running daemon (isakmpd, npppd, ...) the hard way."""
    _event(ctx, lambda state, now: events.crash(state, daemon, now))


@demo.command()
@click.argument("user")
@click.option("--password", help="The password the client sends (default: the right one).")
@click.option("--psk", help="The client's pre-shared key (default: the right one).")
@click.option("--proposal", metavar="GROUP",
              help="The phase-1 group the client offers, e.g. modp2048 (default: accepted).")
@click.option("--blocked", is_flag=True,
              help="A path outside this host drops the client's UDP 4500.")
@click.option("--client", type=click.Choice(["windows", "macos", "ios", "legacy-windows"]),
              default="windows", show_default=True,
              help="Which client's phase-1 proposals it offers.")
@click.pass_context
def connect(ctx: click.Context, user: str, password: str | None, psk: str | None,
            proposal: str | None, blocked: bool, client: str) -> None:
    """Connect a VPN client as USER.  It fails the way a real client would, and the
    daemons log why in /var/log/daemon: pf blocking its packets, isakmpd without
    the policy or without a proposal the client offers, a wrong PSK, an unknown
    USER, a wrong password, a full address pool."""
    _event(ctx, lambda state, now: events.connect(state, user, now, password, psk, proposal,
                                                  blocked, client))


@demo.command()
@click.argument("user")
@click.pass_context
def disconnect(ctx: click.Context, user: str) -> None:
    """Disconnect USER's VPN session(s)."""
    _event(ctx, lambda state, now: events.disconnect(state, user, now))


@demo.command()
@click.option("--sessions", "n_sessions", type=int, default=3, show_default=True,
              help="Connected clients (up to 60000, for benchmarks).")
@click.pass_context
def reset(ctx: click.Context, n_sessions: int) -> None:
    """Start over with a healthy host (also repairs a corrupt state file)."""
    host = _host(ctx)
    try:
        host.store.replace(events.reset(time.time(), n_sessions))
    except (EventError, HostError) as exc:
        _fail(str(exc))
    click.echo(f"demo host reset: healthy, {n_sessions} VPN session(s), "
               f"state in {host.state_path}")


@demo.command(name="break")
@click.argument("scenario", required=False)
@click.option("--list", "list_them", is_flag=True, help="List the scenarios.")
@click.pass_context
def break_(ctx: click.Context, scenario: str | None, list_them: bool) -> None:
    """Break the host the way VPN hosts drift (see --list)."""
    if list_them:
        width = max(len(name) for name in SCENARIOS)
        for name, (description, _) in SCENARIOS.items():
            click.echo(f"{name:<{width}}  {description}")
        return
    if not scenario:
        _fail("name a scenario (demo break --list shows them)")
    _event(ctx, lambda state, now: events.break_host(state, scenario, now))

