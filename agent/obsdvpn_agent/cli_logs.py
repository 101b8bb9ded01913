"""`obsdvpn-agent why`, `history` and `offenders`: answers from isakmpd's and npppd's log.

    obsdvpn-agent why bob --since 2h
    bob: wrong-password (reached auth)
      bob from 203.0.113.20 sent a wrong password at Nov 28 09:01:00
      fix: The user exists but the password does not match npppd-users: ...

The log is /var/log/daemon (root's default; see the README, LOGS, for a copy `serve`
may read), or --log FILE; the demo and snapshot hosts give their own.  Nothing
here blocks anyone: `offenders` lists addresses for a pf table the admin may fill.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import click

from .checks import Stitched, stitch
from .checks import history as ended_sessions
from .checks import offenders as find_offenders
from .checks import why as judge
from .cli import Duration, fail
from .commands import NPPPD_USERS
from .config import Config
from .host.base import HostError
from .parsers.syslog import parse_lines

DAEMON_LOG = Config.daemon_log  # the default of [logs] file


def _lines(ctx: click.Context, log: str | None, rotated: int) -> Iterator[str]:
    """The log's lines, oldest first, streamed from a local file or given by the host."""
    from .host import logfile

    app = ctx.find_root().obj
    uses_host = log is None and app is not None and not app.local
    if uses_host:
        try:
            host = app.host(as_root=True)
            text = host.read_file(DAEMON_LOG)
        except FileNotFoundError:
            return iter(())  # a demo host that logged nothing yet
        except (HostError, OSError) as e:
            fail(f"{DAEMON_LOG}: {getattr(e, 'strerror', None) or e}")
        return iter(text.splitlines())
    path = log or DAEMON_LOG
    files = logfile.history_files(path, rotated)

    def stream() -> Iterator[str]:
        for name in files:
            yield from logfile.iter_lines(name)
    try:
        logfile.check_readable(files[-1])   # fail early, in one line
    except OSError as e:
        fail(f"{path}: {e.strerror} (root reads /var/log/daemon; see the README, LOGS, for "
              "a copy the agent's user may read)")
    return stream()


def _known_users(ctx: click.Context, log: str | None) -> tuple[str, ...]:
    """npppd-users' names, when the host can tell (never needed for an answer)."""
    from .parsers import ParseError
    from .parsers.npppd_users import parse_usernames

    app = ctx.find_root().obj
    if app is None or (app.local and log is not None):
        return ()
    try:
        return parse_usernames(app.host(as_root=True).read_file(NPPPD_USERS), NPPPD_USERS)
    except (HostError, OSError, ParseError):
        return ()


def _stitched(ctx: click.Context, log: str | None, rotated: int) -> Stitched:
    try:
        return stitch(parse_lines(_lines(ctx, log, rotated), datetime.now()))
    except OSError as e:
        fail(f"{log or DAEMON_LOG}: {e.strerror or e}")


_LOG = click.option("--log", metavar="FILE", help=f"Read FILE instead of {DAEMON_LOG}.")
_ROTATED = click.option("--rotated", type=click.IntRange(0, 10), default=0, metavar="N",
                        help="Also read N older files newsyslog left (FILE.0, FILE.1.gz, ...).")
_SINCE = click.option("--since", type=Duration(), metavar="DURATION",
                      help="Only attempts in the last DURATION (30m, 2h, 1d).")
_JSON = click.option("--json", "as_json", is_flag=True, help="One JSON object.")


@click.command()
@click.argument("query", metavar="USER|ADDRESS")
@_SINCE
@_JSON
@_LOG
@_ROTATED
@click.pass_context
def why(ctx: click.Context, query: str, since: timedelta | None, as_json: bool,
        log: str | None, rotated: int) -> None:
    """Why USER cannot connect (or what ADDRESS tried): the latest attempt's verdict,
    the stage it reached, the fix and the log lines that show it."""
    stitched = _stitched(ctx, log, rotated)
    start = datetime.now() - since if since else None
    answer = judge(query, start, stitched, _known_users(ctx, log))
    if as_json:
        click.echo(json.dumps(answer.to_json(), indent=2))
        return
    click.echo(f"{query}: {answer.verdict} (reached {answer.stage})")
    click.echo(f"  {answer.summary}")
    for note in answer.notes:
        click.echo(f"  note: {note}")
    click.echo(f"  fix: {answer.advice}")
    if answer.evidence:
        click.echo("  evidence:")
        for line in answer.evidence:
            click.echo(f"    {line}")


@click.command()
@click.argument("user", required=False)
@_SINCE
@_JSON
@_LOG
@_ROTATED
@click.pass_context
def history(ctx: click.Context, user: str | None, since: timedelta | None, as_json: bool,
            log: str | None, rotated: int) -> None:
    """Ended sessions (npppd's TUNNELUSAGE): user, address, start, duration, bytes, client."""
    sessions = ended_sessions(_stitched(ctx, log, rotated), user)
    if since:
        sessions = tuple(s for s in sessions if s.end >= datetime.now() - since)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in sessions], indent=2))
        return
    if not sessions:
        click.echo("no ended session in the log" + (f" for {user}" if user else ""))
        return
    click.echo(f"{'USER':<16} {'FROM':<22} {'START':<15} {'DURATION':>9} {'BYTES IN':>12} "
               f"{'BYTES OUT':>12}  AUTH        CLIENT")
    for s in sessions:
        peer = f"{s.peer}:{s.port}" if s.peer else "-"
        click.echo(f"{s.user:<16} {peer:<22} {s.start:%b %d %H:%M:%S} {s.duration_s:>8}s "
                   f"{s.bytes_in:>12} {s.bytes_out:>12}  {s.auth or '-':<11} {s.vendor or '-'}")


@click.command()
@_SINCE
@click.option("--min", "minimum", type=click.IntRange(1), default=3, show_default=True,
              help="List addresses with at least this many failures.")
@click.option("--addresses", is_flag=True, help="Only the addresses, one a line (for pfctl -T add -f -).")
@_JSON
@_LOG
@_ROTATED
@click.pass_context
def offenders(ctx: click.Context, since: timedelta | None, minimum: int, addresses: bool,
              as_json: bool, log: str | None, rotated: int) -> None:
    """Addresses with failed logins (likely brute force), most first.  Nothing is blocked:
    `obsdvpn-agent offenders --addresses | pfctl -t bruteforce -T add -f -` if you want."""
    start = datetime.now() - since if since else None
    found = find_offenders(_stitched(ctx, log, rotated), start, minimum)
    if as_json:
        click.echo(json.dumps([{"address": o.address, "failed_logins": o.failed_logins,
                                "user_names": o.user_names, "ike_failures": o.ike_failures,
                                "last": o.last.isoformat()} for o in found], indent=2))
        return
    if addresses:
        for o in found:
            click.echo(o.address)
        return
    if not found:
        click.echo(f"no address with {minimum} or more failures")
        return
    click.echo(f"{'ADDRESS':<40} {'LOGINS':>6} {'NAMES':>5} {'IKE':>4}  LAST")
    for o in found:
        click.echo(f"{o.address:<40} {o.failed_logins:>6} {o.user_names:>5} {o.ike_failures:>4}  "
                   f"{o.last:%b %d %H:%M:%S}")


COMMANDS = (why, history, offenders)
