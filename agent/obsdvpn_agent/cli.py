"""The command line: the only module that prints and exits.

Exit codes follow the Nagios plugin convention everywhere: 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN; usage and configuration errors are 3 too, not click's 2.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click

from . import __version__
from .config import Config, ConfigError, load, to_toml
from .host.base import Host, HostError

EXIT_UNKNOWN = 3


@dataclass
class App:
    """What the global options chose; commands open the host through it."""

    config_path: str | None
    demo: bool
    demo_state: Path | None
    snapshot: str | None
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.config_path)
        return self._config

    def reload_config(self) -> Config:
        """Read the configuration file again (SIGHUP); raises ConfigError."""
        self._config = None
        return self.config

    def use_config(self, cfg: Config) -> None:
        self._config = cfg

    def global_args(self) -> list[str]:
        """The options that choose the host, for a child `obsdvpn-agent` process."""
        if self.snapshot:
            return ["--snapshot", self.snapshot]
        if self.demo_state:
            return ["--demo-state", str(self.demo_state)]
        return ["--demo"] if self.demo else []

    def host_label(self) -> str:
        if self.snapshot:
            return f"snapshot:{self.snapshot}"
        if self.demo or self.demo_state:
            from .host.demo import default_state_path
            return f"demo:{self.demo_state or default_state_path()}"
        return "local"

    def host(self, as_root: bool = True) -> Host:
        if self.snapshot:
            from .host.snapshot import SnapshotHost
            return SnapshotHost(self.snapshot)
        if self.demo or self.demo_state:
            from .host.demo import DemoHost, default_state_path
            return DemoHost(self.demo_state or default_state_path(), as_root=as_root)
        from .commands import root_argvs
        from .host.local import LocalHost
        return LocalHost(root_argvs(self.config), self.config.use_doas)


def fail(message: str, code: int = EXIT_UNKNOWN) -> None:
    click.echo(f"obsdvpn-agent: {message}", err=True)
    sys.exit(code)


LOG_COMMANDS = ("why", "history", "offenders")  # cli_logs.py, loaded when asked for


class _Commands(click.Group):
    """Loads the demo command group only when it is asked for: a real host's
    `check` never imports the simulator (cron pays for every import)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "demo", *LOG_COMMANDS])

    def get_command(self, ctx: click.Context, name: str):
        if name == "demo":
            from .cli_demo import demo
            return demo
        if name in LOG_COMMANDS:
            from . import cli_logs
            return getattr(cli_logs, name)
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="obsdvpn-agent")
@click.option("--config", "config_path", metavar="FILE",
              help="TOML configuration (default /etc/obsdvpn-agent.conf if it exists).")
@click.option("--demo", is_flag=True, help="Use the built-in simulated OpenBSD VPN host.")
@click.option("--demo-state", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="State file of the simulated host (implies --demo).")
@click.option("--snapshot", metavar="DIR",
              help="Replay a snapshot made by `obsdvpn-agent snapshot DIR` instead of the host.")
@click.pass_context
def main_group(ctx: click.Context, config_path, demo, demo_state, snapshot) -> None:
    """Watch and repair an OpenBSD L2TP/IPsec (isakmpd + npppd) VPN host."""
    if snapshot and (demo or demo_state):
        raise click.UsageError("--snapshot and --demo exclude each other")
    ctx.obj = App(config_path, demo, demo_state, snapshot)


def _collect(app: App, as_root: bool = True):
    from .checks import evaluate
    from .probes import gather

    try:
        cfg = app.config
        host = app.host(as_root)
        host.info()  # a host that cannot be opened is one line, not an UNKNOWN per check
        facts = gather(host, cfg)
    except ConfigError as e:
        fail(str(e))
    except HostError as e:
        fail(str(e))
    return cfg, facts, evaluate(facts, cfg)


@main_group.command()
@click.option("--json", "as_json", is_flag=True, help="Status, every check and the facts.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when everything is OK.")
@click.option("--textfile", metavar="PATH",
              help="Also write the metrics for node_exporter's textfile collector.")
@click.pass_obj
def check(app: App, as_json: bool, quiet: bool, textfile: str | None) -> None:
    """Check the VPN host once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
    from .checks import Status, worst
    from .report import detail_lines, json_report, summary_line

    cfg, facts, results = _collect(app)
    status = worst(r.status for r in results)
    if as_json:
        click.echo(json.dumps(json_report(facts, results, cfg), indent=2))
    elif not (quiet and status == 0):
        click.echo(summary_line(results))
        for line in detail_lines(results):
            click.echo(line)
    textfile = textfile or cfg.textfile
    if textfile:
        # After the report: a textfile that cannot be written must not hide a CRITICAL.
        from .metrics import write_textfile
        from .repair_state import load_repair_state
        try:
            write_textfile(textfile, facts, results, cfg, load_repair_state(app))
        except OSError as e:
            click.echo(f"obsdvpn-agent: {textfile}: cannot write the textfile: {e.strerror}",
                       err=True)
            status = worst((status, Status.UNKNOWN))
    sys.exit(int(status))


@main_group.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sessions(app: App, as_json: bool) -> None:
    """List who is connected: user, interface, address, peer, since, bytes."""
    from .report import sessions as session_views, sessions_table

    _, facts, _ = _collect(app)
    views = session_views(facts)
    if views is None:
        fail(str(facts.sessions))
    if as_json:
        click.echo(json.dumps([vars(v) for v in views], indent=2))
        return
    if not views:
        click.echo("no session connected")
        return
    for line in sessions_table(views):
        click.echo(line)


@main_group.command("config")
@click.pass_obj
def show_config(app: App) -> None:
    """Print the effective configuration (defaults merged with the file)."""
    try:
        click.echo(to_toml(app.config), nl=False)
    except ConfigError as e:
        fail(str(e))


@main_group.command()
@click.argument("directory", metavar="DIR")
@click.pass_obj
def snapshot(app: App, directory: str) -> None:
    """Record everything the agent reads from the host into DIR/snapshot.json.

    Secrets stay out: ipsec.conf is only stat'ed and npppd-users is stored
    with its passwords replaced.
    """
    from .host.snapshot import RecordingHost, write_snapshot
    from .probes import gather

    try:
        cfg = app.config
        recorder = RecordingHost(app.host(), cfg.daemons)
        recorder.info()
        gather(recorder, cfg, parallel=False)
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = write_snapshot(directory, recorder.document(created, __version__))
    except (ConfigError, HostError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"{directory}: {e.strerror}")
    click.echo(f"wrote {path} ({len(recorder.commands)} commands, "
               f"{len(recorder.files)} files); replay it with "
               f"`obsdvpn-agent --snapshot {directory} check`")


def setup_logging(verbose: bool = False) -> None:
    """syslog (daemon facility) on OpenBSD, stderr elsewhere; no log files of our own."""
    import logging
    import logging.handlers
    import platform

    logger = logging.getLogger("obsdvpn-agent")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if platform.system() == "OpenBSD":
        handler: logging.Handler = logging.handlers.SysLogHandler(
            address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter("obsdvpn_agent: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("obsdvpn-agent: %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]


@main_group.command()
@click.pass_obj
def metrics(app: App) -> None:
    """Print one exposition of every metric to stdout."""
    from .metrics import render
    from .repair_state import load_repair_state

    cfg, facts, results = _collect(app)
    click.echo(render(facts, results, cfg, load_repair_state(app)).decode(), nl=False)


@main_group.command()
@click.option("--listen", metavar="ADDR:PORT", help="Default 127.0.0.1:8469 (or serve.listen).")
@click.option("--interval", type=click.FloatRange(min=0.2), default=15.0, show_default=True,
              help="Seconds between collections; scrapes serve the latest one.")
@click.option("--tls-cert", metavar="FILE", help="PEM certificate (with --tls-key).")
@click.option("--tls-key", metavar="FILE", help="PEM private key.")
@click.option("--allow-remote", is_flag=True,
              help="Serve on a non-loopback address without TLS.")
@click.option("--verbose", "-v", is_flag=True, help="Log every request.")
@click.pass_obj
def serve(app: App, listen, interval, tls_cert, tls_key, allow_remote, verbose) -> None:
    """Serve /metrics and a status page; SIGHUP reloads the config, SIGTERM stops."""
    import signal
    import threading

    from .privilege import harden_serve
    from .server import (CollectionError, Collector, ListenError, collect_in_child,
                         make_server)

    setup_logging(verbose)
    try:
        cfg = app.config
    except ConfigError as e:
        fail(str(e))

    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together")
    collector = Collector(app.host, app.reload_config, interval,
                          collect=collect_in_child(app.global_args()))
    try:
        server = make_server(collector, listen or cfg.listen, tls_cert or cfg.tls_cert,
                             tls_key or cfg.tls_key, allow_remote or cfg.allow_remote)
    except ListenError as e:
        fail(str(e))
    try:
        collector.collect_once()  # fail now, in one line, if the host cannot be read
    except CollectionError as e:
        fail(str(e))
    try:
        harden_serve(cfg, app.config_path, read_paths=[p for p in (tls_cert or cfg.tls_cert,
                                                                   tls_key or cfg.tls_key) if p])
    except OSError as e:
        fail(f"pledge/unveil refused: {e}")
    signal.signal(signal.SIGHUP, lambda *_: collector.reload())

    def stop(*_):
        collector.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=collector.loop, kwargs={"first_wait": True}, name="collector",
                     daemon=True).start()
    host, port = server.server_address[:2]
    scheme = "https" if (tls_cert or cfg.tls_cert) else "http"
    import logging
    logging.getLogger("obsdvpn-agent").info(
        "serving %s on %s://%s:%s/metrics (interval %gs)", app.host_label(), scheme, host, port,
        interval)
    server.serve_forever()
    server.server_close()


@main_group.command()
@click.option("--dry-run", "-n", is_flag=True, help="Print the plan; change nothing.")
@click.option("--only", multiple=True, metavar="CHECK_ID",
              help="Repair only what this check needs (repeatable).")
@click.pass_obj
def repair(app: App, dry_run: bool, only: tuple[str, ...]) -> None:
    """Re-apply the expected configuration after drift, safely.

    Exit 0 nothing to do, 1 drift fixed (verified), 2 still failing, 3 could
    not run.  With --dry-run: 0 nothing to do, 1 something would change.
    """
    import contextlib

    from .checks import check_ids, evaluate
    from .probes import gather
    from .repair import LockHeld, RepairLock, apply, exit_code, plan
    from .repair_state import repair_lock_path
    from .report import summary_line

    setup_logging()
    try:
        cfg = app.config
        host = app.host()
        unknown = [c for c in only if c not in check_ids(cfg)]
        if unknown:
            fail(f"--only {unknown[0]}: no such check (see `obsdvpn-agent check --json`)")
        if app.snapshot and not dry_run:
            fail(f"{app.snapshot} is a snapshot: it can only be planned with --dry-run")
        if not dry_run and not host.info().is_root:
            fail("repair changes the system and must run as root (try --dry-run)")
        # A dry run changes nothing, so it takes no lock (and needs no root for one).
        lock = (contextlib.nullcontext() if dry_run or app.snapshot
                else RepairLock(repair_lock_path(app)))
        with lock:
            facts = gather(host, cfg)
            before = evaluate(facts, cfg)
            p = plan(before, facts, cfg, only)
            for line in _plan_lines(p):
                click.echo(line)
            if dry_run:
                sys.exit(1 if p.actions else 0)
            outcomes = apply(p, host, cfg.command_timeout_s) if p.actions else ()
            after = evaluate(gather(host, cfg), cfg) if p.actions else before
    except LockHeld as e:
        fail(str(e))
    except (ConfigError, HostError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"{repair_lock_path(app)}: cannot take the repair lock: {e.strerror}")
    for o in outcomes:
        extra = f": {o.message}" if o.message else ""
        click.echo(f"{o.result.upper():8} {o.action.check}: {o.action.shown}{extra}")
    if p.actions:
        click.echo(f"before: {summary_line(before)}")
        click.echo(f"after:  {summary_line(after)}")
    code = exit_code(p, outcomes, after)
    _record_repair(app, code, outcomes, before, after)
    sys.exit(code)


def _record_repair(app: App, code: int, outcomes, before, after) -> None:
    """Keep the outcome for the metrics, so a repair alert also resolves."""
    import time

    from .checks import worst
    from .repair_state import save_repair_state

    counts = {k: sum(1 for o in outcomes if o.result == k)
              for k in ("applied", "failed", "refused", "skipped")}
    try:
        save_repair_state(app, {"time": time.time(), "exit_code": code, "actions": counts,
                                "status_before": worst(r.status for r in before).name,
                                "status_after": worst(r.status for r in after).name})
    except OSError as e:
        click.echo(f"obsdvpn-agent: cannot record the repair outcome: {e.strerror}", err=True)


def _plan_lines(p) -> list[str]:
    lines = []
    if not p.actions:
        lines.append("nothing to repair")
    for i, a in enumerate(p.actions, 1):
        lines.append(f"{i}. {a.check}: {a.what} ({a.before} -> {a.after}): {a.shown}")
        if a.validate:
            lines.append(f"   only if `{' '.join(a.validate)}` passes")
    for n in p.notes:
        lines.append(f"not repaired: {n}")
    return lines


@main_group.command(hidden=True)
@click.option("--config-stdin", is_flag=True, help="Read the configuration as TOML on stdin.")
@click.pass_obj
def collect(app: App, config_stdin: bool) -> None:
    """One collection for `serve`: results and rendered pages as JSON on stdout."""
    import tomllib

    from .config import from_dict
    from .repair_state import load_repair_state
    from .server import collect_in_process

    try:
        if config_stdin:
            app.use_config(from_dict(tomllib.loads(sys.stdin.read()),
                                     "(configuration from serve)"))
        cfg = app.config
        host = app.host()
        host.info()
    except (ConfigError, HostError, tomllib.TOMLDecodeError) as e:
        fail(str(e))
    try:
        collection = collect_in_process(host, cfg, load_repair_state(app))
    except HostError as e:
        fail(str(e))
    sys.stdout.write(collection.to_json())


@main_group.command("doas-rules")
@click.option("--user", default="_obsdvpn", show_default=True,
              help="The unprivileged user `serve` runs as.")
@click.pass_obj
def doas_rules_command(app: App, user: str) -> None:
    """Print the doas.conf(5) lines for the root-only commands, one per line."""
    from .privilege import doas_rules

    try:
        for line in doas_rules(app.config, user):
            click.echo(line)
    except ConfigError as e:
        fail(str(e))


def main() -> None:
    try:
        rv = main_group.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("obsdvpn-agent: aborted", err=True)
        sys.exit(EXIT_UNKNOWN)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(EXIT_UNKNOWN)
    except Exception as e:  # a bug: still one line and UNKNOWN for cron, never a traceback
        where = e.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        at = f" at {where.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{where.tb_lineno}" \
            if where is not None else ""
        click.echo(f"obsdvpn-agent: internal error: {type(e).__name__}: {e}{at} "
                   "(please report it)", err=True)
        sys.exit(EXIT_UNKNOWN)
    sys.exit(rv if isinstance(rv, int) else 0)
