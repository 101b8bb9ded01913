"""The command line: the only module that prints and exits.

Exit codes follow the Nagios plugin convention everywhere: 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN; usage and configuration errors are 3 too, not click's 2.
"""

from __future__ import annotations

import gc
import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__
from .config import Config, ConfigError, load, to_toml
from .host.base import Host, HostError

if TYPE_CHECKING:
    from .checks import Result
    from .probes import Facts
    from .repair import Outcome, Pause, Plan

EXIT_UNKNOWN = 3
def _log_state() -> str:
    """The daemon log's read position and totals, one file per user that counts: root's
    `check --textfile` and the unprivileged serve each keep their own."""
    from .host.identity import effective_user
    return f"log-state-{effective_user()}.json"


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

    @property
    def on_demo(self) -> bool:
        """The host is the simulated one (--demo or --demo-state)."""
        return bool(self.demo or self.demo_state)

    @property
    def local(self) -> bool:
        """The host is this machine (no demo, no snapshot)."""
        return not (self.on_demo or self.snapshot)

    def global_args(self) -> list[str]:
        """The options that choose the host, for a child `obsdvpn-agent` process."""
        if self.snapshot:
            return ["--snapshot", self.snapshot]
        if self.demo_state:
            return ["--demo-state", str(self._demo_state())]
        return ["--demo"] if self.demo else []

    def host_label(self) -> str:
        if self.snapshot:
            return f"snapshot:{self.snapshot}"
        if self.on_demo:
            return f"demo:{self._demo_state()}"
        return "local"

    def _demo_state(self) -> Path:
        from .host.demo import default_state_path
        # Absolute once: the agent's files beside it then never land in "" or elsewhere.
        return (self.demo_state or default_state_path()).absolute()

    def agent_file(self, name: str) -> str | None:
        """Where the agent keeps its record `name`: /var/db/obsdvpn-agent on a real
        host, beside the state file of the demo host, nowhere for a snapshot."""
        from .host.agentfiles import STATE_DIR
        if self.snapshot:
            return None
        if self.on_demo:
            return f"{self._demo_state()}.{name}"
        return f"{STATE_DIR}/{name}"

    def repair_record_path(self) -> str | None:
        """Where the outcome of the last repair is kept (None: a snapshot keeps none)."""
        from .host.agentfiles import REPAIR_RECORD
        return self.agent_file(REPAIR_RECORD)

    def _record(self, name: str) -> dict[str, Any] | None:
        """The agent's record `name`, if it keeps one and it is there."""
        from .host.agentfiles import load_record
        path = self.agent_file(name)
        return None if path is None else load_record(path)

    def pause(self) -> Pause | None:
        """The repair pause in force now, if any (an expired one is none)."""
        import time

        from .host.agentfiles import PAUSE_RECORD
        from .repair import Pause
        record = self._record(PAUSE_RECORD)
        return None if record is None else Pause.in_force(record, time.time())

    def observed(self) -> dict[str, Any] | None:
        """Root's last observation of what only root can ask (see probes.observation)."""
        from .host.agentfiles import OBSERVED_RECORD
        return self._record(OBSERVED_RECORD)

    def repair_lock_path(self) -> str:
        from .host.agentfiles import REPAIR_LOCK
        if self.on_demo:
            return f"{self._demo_state()}.repair.lock"
        return REPAIR_LOCK

    def repair_record(self) -> dict[str, Any] | None:
        from .host.agentfiles import REPAIR_RECORD
        return self._record(REPAIR_RECORD)

    def host(self, as_root: bool = True) -> Host:
        if self.snapshot:
            from .host.snapshot import SnapshotHost
            return SnapshotHost(self.snapshot)
        if self.on_demo:
            from .host.demo import DemoHost
            return DemoHost(self._demo_state(), as_root=as_root)
        from .commands import root_argvs
        from .host.local import LocalHost
        return LocalHost(root_argvs(self.config), self.config.use_doas)


def _finite(param: click.Parameter, value: float) -> float:
    # nan passes FloatRange (every comparison is false) and made serve collect nonstop.
    if math.isnan(value):
        raise click.BadParameter("nan is not a number of seconds", param=param)
    return value


def fail(message: str, code: int = EXIT_UNKNOWN) -> NoReturn:
    click.echo(f"obsdvpn-agent: {message}", err=True)
    sys.exit(code)


LOG_COMMANDS = ("why", "history", "offenders")  # cli_logs.py, loaded when asked for


class _Commands(click.Group):
    """Loads the demo command group only when it is asked for: a real host's
    `check` never imports the simulator (cron pays for every import)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "demo", *LOG_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "demo":
            from .cli_demo import demo
            return demo
        if name in LOG_COMMANDS:
            from . import cli_logs
            command: click.Command = getattr(cli_logs, name)
            return command
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
def main_group(ctx: click.Context, config_path: str | None, demo: bool,
               demo_state: Path | None, snapshot: str | None) -> None:
    """Watch and repair an OpenBSD L2TP/IPsec (isakmpd + npppd) VPN host."""
    if snapshot and (demo or demo_state):
        raise click.UsageError("--snapshot and --demo exclude each other")
    if ctx.invoked_subcommand != "serve":
        # A one-shot command builds one acyclic graph of facts and exits: the
        # cycle collector would only rescan it as it grows (a sixth of a
        # 10,000-session collection, bench/collection.py).  serve runs for days.
        gc.disable()
    ctx.obj = App(config_path, demo, demo_state, snapshot)


def _collect(app: App, as_root: bool = True,
             count_log: bool = False) -> tuple[Config, Facts, tuple[Result, ...]]:
    """Gather and judge; count_log: also read the daemon log's new lines into the
    kept totals (what metrics show: `metrics`, `check --textfile`, serve)."""
    from .checks import evaluate
    from .probes import gather

    try:
        cfg = app.config
        host = app.host(as_root)
        host.info()  # a host that cannot be opened is one line, not an UNKNOWN per check
        facts = gather(host, cfg, observed=app.observed(),
                       log_state=app.agent_file(_log_state()) if count_log else None)
    except ConfigError as e:
        fail(str(e))
    except HostError as e:
        fail(str(e))
    return cfg, facts, evaluate(facts, cfg)


def _keep_observation(app: App, facts: Facts) -> None:
    """Leave what root saw of isakmpd for the unprivileged serve (no secret is in it)."""
    from .host.agentfiles import OBSERVED_RECORD, save_record
    from .probes import observation

    record = observation(facts)
    path = app.agent_file(OBSERVED_RECORD)
    if record is None or path is None:
        return
    try:
        save_record(path, record)
    except OSError as e:
        click.echo(f"obsdvpn-agent: {path}: cannot keep what root saw: {e.strerror}", err=True)


class Duration(click.ParamType[timedelta]):
    """A span of time as people write it: 90s, 30m, 2h, 1d12h, 1w (a bare number: seconds)."""

    name = "DURATION"
    _FORM = re.compile(r"(?:([0-9]{1,6})w)?(?:([0-9]{1,6})d)?(?:([0-9]{1,6})h)?"
                       r"(?:([0-9]{1,6})m)?(?:([0-9]{1,9})s?)?")

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        m = self._FORM.fullmatch(text)
        if not text or m is None or not any(m.groups()):
            self.fail(f"{value!r} is not a duration such as 90s, 30m, 2h or 1d12h", param, ctx)
        w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        return timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


@main_group.command()
@click.option("--json", "as_json", is_flag=True, help="Status, every check and the facts.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when everything is OK.")
@click.option("--on-change", is_flag=True,
              help="Print only when a check's status differs from the last such run "
                   "(cron: one mail per change, not one per minute).")
@click.option("--remind", type=click.FloatRange(min=0), default=24.0, show_default=True,
              metavar="HOURS", help="With --on-change: print an unchanged problem again "
                                    "after this many hours.")
@click.option("--textfile", metavar="PATH",
              help="Also write the metrics for node_exporter's textfile collector.")
@click.pass_obj
def check(app: App, as_json: bool, quiet: bool, on_change: bool, remind: float,
          textfile: str | None) -> None:
    """Check the VPN host once; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
    from .checks import Status, worst
    from .report import detail_lines, json_report, summary_line

    try:
        counted = bool(textfile or app.config.textfile)   # the textfile's log counters
    except ConfigError as e:
        fail(str(e))
    cfg, facts, results = _collect(app, count_log=counted)
    _keep_observation(app, facts)
    status = worst(r.status for r in results)
    pause = app.pause()
    if as_json:
        report = json_report(facts, results, cfg)
        report["repair_pause"] = None if pause is None else pause.to_record()
        click.echo(json.dumps(report, indent=2))
    elif _should_print(app, results, quiet, on_change, remind):
        click.echo(summary_line(results))
        for line in detail_lines(results):
            click.echo(line)
        if pause is not None:
            click.echo(pause.describe())
    textfile = textfile or cfg.textfile
    if textfile:
        # After the report: a textfile that cannot be written must not hide a CRITICAL.
        from .host.agentfiles import write_textfile
        from .metrics import render
        try:
            write_textfile(textfile, render(facts, results, cfg, app.repair_record(), pause))
        except OSError as e:
            click.echo(f"obsdvpn-agent: {textfile}: cannot write the textfile: {e.strerror}",
                       err=True)
            status = worst((status, Status.UNKNOWN))
    sys.exit(int(status))


def _should_print(app: App, results: tuple[Result, ...], quiet: bool, on_change: bool,
                  remind_h: float) -> bool:
    """Whether `check` prints: --quiet hides OK; --on-change hides what it said already.

    With --on-change it prints when the set of (check, status) differs from
    the last run (a recovery included), and an unchanged problem again once
    `remind_h` hours have passed since it was last printed.
    """
    import time

    from .checks import Status, worst
    from .host.agentfiles import CHECK_RECORD, load_record, save_record

    status = worst(r.status for r in results)
    if not on_change:
        return not (quiet and status is Status.OK)
    path = app.agent_file(CHECK_RECORD)
    now = time.time()
    seen = [[r.check, r.status.name] for r in results]
    last = (None if path is None else load_record(path)) or {}
    printed_at = last.get("printed_at")
    if last.get("seen") != seen:
        say = bool(last) or not (quiet and status is Status.OK)
    else:
        say = (status is not Status.OK and isinstance(printed_at, (int, float))
               and now - printed_at >= remind_h * 3600)
    if path is not None and (say or last.get("seen") != seen):
        try:
            save_record(path, {"seen": seen, "printed_at": now if say else printed_at})
        except OSError as e:
            click.echo(f"obsdvpn-agent: {path}: cannot keep what was printed: {e.strerror}",
                       err=True)
    return say


@main_group.command()
@click.option("--for", "for_s", type=Duration(), metavar="DURATION",
              help="End the pause by itself after this long (default: until `resume`).")
@click.option("--reason", default="", metavar="TEXT", help="Why, for check and the metrics.")
@click.pass_obj
def pause(app: App, for_s: timedelta | None, reason: str) -> None:
    """Pause repair for maintenance: it changes nothing until `resume`."""
    import time

    from .host.agentfiles import PAUSE_RECORD, save_record
    from .repair import Pause

    if any(not c.isprintable() for c in reason) or len(reason) > 200:
        raise click.BadParameter("one line of at most 200 printable characters",
                                 param_hint="--reason")
    path = app.agent_file(PAUSE_RECORD)
    if path is None:
        fail("a snapshot cannot be paused")
    now = time.time()
    p = Pause(now, None if for_s is None else now + for_s.total_seconds(), reason)
    try:
        save_record(path, p.to_record())
    except OSError as e:
        fail(f"{path}: cannot record the pause: {e.strerror}")
    click.echo(p.describe())


@main_group.command()
@click.pass_obj
def resume(app: App) -> None:
    """End a repair pause."""
    from .host.agentfiles import PAUSE_RECORD, remove_record

    path = app.agent_file(PAUSE_RECORD)
    if path is None:
        fail("a snapshot cannot be paused or resumed")
    try:
        if not remove_record(path):
            click.echo("repair was not paused")
            return
    except OSError as e:
        fail(f"{path}: cannot end the pause: {e.strerror}")
    click.echo("repair resumed")


@main_group.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sessions(app: App, as_json: bool) -> None:
    """List who is connected: user, interface, address, peer, since, bytes."""
    from .checks import by_id
    from .report import sessions as session_views
    from .report import sessions_table

    _, facts, results = _collect(app)
    views = session_views(facts)
    if views is None:
        fail(str(facts.npppctl.sessions))
    if as_json:
        click.echo(json.dumps([vars(v) for v in views], indent=2))
        return
    if not views:
        npppd = by_id(results)["daemon.npppd.running"]
        if npppd.values.get("running") is False:
            click.echo(f"no session: {npppd.summary}")
        else:
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
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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

    cfg, facts, results = _collect(app, count_log=True)
    click.echo(render(facts, results, cfg, app.repair_record(), app.pause()).decode(), nl=False)


@main_group.command()
@click.option("--listen", metavar="ADDR:PORT", help="Default 127.0.0.1:8469 (or serve.listen).")
@click.option("--interval", type=click.FloatRange(min=0.2, max=3600), default=15.0,
              show_default=True, callback=lambda ctx, param, v: _finite(param, v),
              help="Seconds between collections; scrapes serve the latest one.")
@click.option("--tls-cert", metavar="FILE", help="PEM certificate (with --tls-key).")
@click.option("--tls-key", metavar="FILE", help="PEM private key.")
@click.option("--allow-remote", is_flag=True,
              help="Serve on a non-loopback address without TLS.")
@click.option("--verbose", "-v", is_flag=True, help="Log every request.")
@click.pass_obj
def serve(app: App, listen: str | None, interval: float, tls_cert: str | None,
          tls_key: str | None, allow_remote: bool, verbose: bool) -> None:
    """Serve /metrics and a status page; SIGHUP reloads the config, SIGTERM stops."""
    import signal
    import threading

    from .privilege import harden_serve
    from .server import CollectionError, Collector, ListenError, collect_in_child, make_server

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

    def stop(*_: object) -> None:
        from .host.child import stop_children
        collector.stop()
        stop_children()  # a collection under way stops with serve, not after it
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
    from .host.agentfiles import LockHeld, RepairLock
    from .probes import gather
    from .repair import apply, exit_code, plan
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
        paused = app.pause()
        if paused is not None and not dry_run:
            click.echo(f"{paused.describe()}: nothing changed")
            sys.exit(0)
        # A dry run changes nothing, so it takes no lock (and needs no root for one).
        lock = (contextlib.nullcontext() if dry_run or app.snapshot
                else RepairLock(app.repair_lock_path()))
        with lock:
            facts = gather(host, cfg)
            before = evaluate(facts, cfg)
            p = plan(before, only, cfg.repair_skip)
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
        fail(f"{app.repair_lock_path()}: cannot take the repair lock: {e.strerror}")
    for o in outcomes:
        extra = f": {o.message}" if o.message else ""
        click.echo(f"{o.result.upper():8} {o.action.check}: {o.action.shown}{extra}")
    if p.actions:
        click.echo(f"before: {summary_line(before)}")
        click.echo(f"after:  {summary_line(after)}")
    code = exit_code(p, outcomes, after)
    _record_repair(app, code, outcomes, before, after)
    sys.exit(code)


def _record_repair(app: App, code: int, outcomes: tuple[Outcome, ...],
                   before: tuple[Result, ...], after: tuple[Result, ...]) -> None:
    """Keep the outcome for the metrics, so a repair alert also resolves.

    The last repair that acted is kept as well: a no-op repair from cron a
    few minutes later must not erase the record of the one that fixed something.
    """
    import time

    from .checks import worst
    from .host.agentfiles import save_record

    path = app.repair_record_path()
    if path is None:
        return
    counts = {k: sum(1 for o in outcomes if o.result == k)
              for k in ("applied", "failed", "refused", "skipped")}
    record: dict[str, Any] = {"time": time.time(), "exit_code": code, "actions": counts,
                              "status_before": worst(r.status for r in before).name,
                              "status_after": worst(r.status for r in after).name}
    previous = app.repair_record() or {}
    if outcomes:
        record["last_change"] = {k: record[k] for k in ("time", "exit_code", "actions")}
    elif isinstance(previous.get("last_change"), dict):
        record["last_change"] = previous["last_change"]
    try:
        save_record(path, record)
    except OSError as e:
        click.echo(f"obsdvpn-agent: {path}: cannot record the repair outcome: {e.strerror}",
                   err=True)


def _plan_lines(p: Plan) -> list[str]:
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
@click.option("--config-stdin", is_flag=True,
              help="Read the effective configuration from serve, as JSON, on stdin.")
@click.pass_obj
def collect(app: App, config_stdin: bool) -> None:
    """One collection for `serve`: results and rendered pages on stdout (encode_collection)."""
    from .config import from_dict
    from .server import collect_encoded

    try:
        if config_stdin:
            doc = json.loads(sys.stdin.read())
            app.use_config(from_dict(doc["config"], str(doc["source"])))
        cfg = app.config
        host = app.host()
        host.info()
    except (ConfigError, HostError) as e:
        fail(str(e))
    except (ValueError, KeyError, TypeError) as e:
        fail(f"configuration from serve not understood: {e}")
    try:
        encoded = collect_encoded(host, cfg, app.repair_record(), app.pause(),
                                  app.observed(), app.agent_file(_log_state()))
    except HostError as e:
        fail(str(e))
    for piece in encoded:
        sys.stdout.buffer.write(piece)


@main_group.command("doas-rules")
@click.option("--user", default="_obsdvpn", show_default=True,
              help="The unprivileged user `serve` runs as.")
@click.pass_obj
def doas_rules_command(app: App, user: str) -> None:
    """Print the doas.conf(5) lines for the root-only commands, one per line."""
    from .privilege import check_identity, doas_rules

    try:
        check_identity(user)
    except ValueError as e:
        fail(f"--user: {e}")
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
