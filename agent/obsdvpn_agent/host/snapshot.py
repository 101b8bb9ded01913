"""Snapshots: a support bundle of everything the agent read, and its replay.

`obsdvpn-agent snapshot DIR` wraps the real host in a RecordingHost, runs one
collection, and writes DIR/snapshot.json:

    {"format": "obsdvpn-agent-snapshot", "version": 1,
     "host": {"hostname": ..., "system": "OpenBSD", "release": "7.6", "is_root": true},
     "commands": [{"argv": ["/sbin/pfctl", "-si"], "returncode": 0,
                   "stdout": "Status: Enabled ...", "stderr": ""}],
     "command_errors": [{"argv": [...], "error": "timeout", "message": "..."}],
     "files": [{"path": "/etc/ipsec.conf", "exists": true, "mode": "0600",
                "uid": 0, "gid": 0, "owner": "root", "group": "wheel", "size": 211}],
     "processes": [{"pid": 1, "name": "isakmpd", "cmdline": ["/sbin/isakmpd", "-K"]}],
     "isakmpd": [{"tag": "[Phase 2]:Passive-Connections",
                  "result": "from-192.0.2.1=17-to-0.0.0.0/0=17:1701\n"}]}

Secrets never enter it: ipsec.conf is only stat'ed, `ipsecctl -nvf` output is
stored without its PSK lines, and the npppd-users text is stored with its
passwords replaced.  isakmpd's answers (`isakmpd`, null when none came in
time) are section and connection names, no keys.  `--snapshot DIR` replays the file
through SnapshotHost, which runs nothing and writes nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from ..commands import IPSEC_CONF, IPSECCTL_NVF, NPPPD_CONF, NPPPD_USERS, isakmpd_query_line
from ..parsers import first_line
from .base import (
    CommandNotFound,
    CommandResult,
    CommandTimeout,
    FileInfo,
    Host,
    HostError,
    HostInfo,
    Process,
)

FORMAT = "obsdvpn-agent-snapshot"
VERSION = 1
FILENAME = "snapshot.json"
MAX_BYTES = 64 * 1024 * 1024
# Files whose text is never stored, whatever reads it.
_NEVER_STORED = frozenset({IPSEC_CONF})


class SnapshotError(HostError):
    pass


class RecordingHost:
    """Passes every read through to a real host and remembers what came back."""

    def __init__(self, inner: Host, daemons: tuple[str, ...] = ("isakmpd", "npppd")) -> None:
        self._inner = inner
        self._daemons = frozenset(daemons)
        self.label = f"recording:{inner.label}"
        self.commands: list[dict[str, Any]] = []
        self.command_errors: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.process_list: list[dict[str, Any]] = []
        self.isakmpd: list[dict[str, Any]] = []
        self._info: HostInfo | None = None

    def info(self) -> HostInfo:
        self._info = self._inner.info()
        return self._info

    def run(self, argv: Sequence[str], timeout_s: float) -> CommandResult:
        try:
            result = self._inner.run(argv, timeout_s)
        except HostError as e:
            kind = ("timeout" if isinstance(e, CommandTimeout)
                    else "not_found" if isinstance(e, CommandNotFound) else "error")
            self.command_errors.append({"argv": list(argv), "error": kind, "message": str(e)})
            raise
        stdout = result.stdout
        if tuple(argv) == IPSECCTL_NVF:
            from ..parsers.ipsecctl import drop_psk_lines

            # The PSK line goes; what is left parses to the same records.
            stdout = drop_psk_lines(stdout)
        self.commands.append({"argv": list(result.argv), "returncode": result.returncode,
                              "stdout": stdout, "stderr": result.stderr})
        return result

    def query_isakmpd(self, tag: str, timeout_s: float) -> str | None:
        isakmpd_query_line(tag)
        try:
            answer = self._inner.query_isakmpd(tag, timeout_s)
        except HostError as e:
            self.isakmpd.append({"tag": tag, "error": str(e)})
            raise
        self.isakmpd.append({"tag": tag, "result": answer})
        return answer

    def read_file(self, path: str) -> str:
        text = self._inner.read_file(path)
        entry = self.files.setdefault(path, {"path": path})
        if path not in _NEVER_STORED:
            entry["content"] = text
        return text

    def stat_file(self, path: str) -> FileInfo:
        fi = self._inner.stat_file(path)
        entry = self.files.setdefault(path, {"path": path})
        entry.update({"exists": fi.exists, "mode": f"{fi.mode:04o}", "uid": fi.uid,
                      "gid": fi.gid, "owner": fi.owner, "group": fi.group, "size": fi.size})
        return fi

    def write_file(self, path: str, text: str, mode: int) -> str | None:
        raise HostError("a snapshot is being recorded: nothing is written")

    def chmod(self, path: str, mode: int) -> None:
        raise HostError("a snapshot is being recorded: nothing is changed")

    def chown(self, path: str, uid: int, gid: int) -> None:
        raise HostError("a snapshot is being recorded: nothing is changed")

    def processes(self) -> tuple[Process, ...]:
        procs = self._inner.processes()
        # Only the daemons the checks look at: other programs' command lines
        # can carry their own secrets (`mysql -pSECRET`), and none are needed.
        self.process_list = [{"pid": p.pid, "name": p.name, "cmdline": list(p.cmdline),
                              "username": p.username} for p in procs
                             if p.name in self._daemons]
        return procs

    def document(self, created: str, agent_version: str) -> dict[str, Any]:
        from ..parsers.npppd_users import redact

        files = []
        for entry in self.files.values():
            entry = dict(entry)
            if entry["path"] == NPPPD_USERS and "content" in entry:
                entry["content"] = redact(entry["content"])
            if entry["path"] == NPPPD_CONF and "content" in entry:
                entry["content"] = _pools_only(entry.pop("content"))
                if entry["content"] is None:
                    del entry["content"]
            files.append(entry)
        info = self._info or self._inner.info()
        return {"format": FORMAT, "version": VERSION, "created": created,
                "agent_version": agent_version,
                "host": {"hostname": info.hostname, "system": info.system,
                         "release": info.release, "is_root": info.is_root},
                "commands": self.commands, "command_errors": self.command_errors,
                "files": files, "processes": self.process_list,
                "isakmpd": self.isakmpd}


def write_snapshot(directory: str, document: dict[str, Any]) -> str:
    from .atomic import replace_file

    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, FILENAME)
    replace_file(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode(), 0o600)
    return path


class SnapshotHost:
    """Replays a snapshot.json.  Untrusted input: validated, never executed."""

    def __init__(self, directory: str) -> None:
        path = directory if directory.endswith(".json") else os.path.join(directory, FILENAME)
        self.label = f"snapshot:{path}"
        self._path = path
        doc = _load(path)
        host = _field(doc, "host", dict, path)
        hostname, system, release = (_printable(host.get(k, "?"), f"{path}: host.{k}")
                                     for k in ("hostname", "system", "release"))
        self._info = HostInfo(hostname, system, release, host.get("is_root") is True)
        self._results: dict[tuple[str, ...], CommandResult] = {}
        for i, c in enumerate(_field(doc, "commands", list, path)):
            where = f"{path}: commands[{i}]"
            argv = _argv(c, where)
            rc = c.get("returncode")
            # An exit status, or minus a signal number as subprocess reports it.
            if not isinstance(rc, int) or isinstance(rc, bool) or not -255 <= rc <= 255:
                raise SnapshotError(f"{where}: 'returncode' must be an integer from -255 to 255")
            out, err = c.get("stdout", ""), c.get("stderr", "")
            if not isinstance(out, str) or not isinstance(err, str):
                raise SnapshotError(f"{where}: 'stdout' and 'stderr' must be strings")
            self._results[argv] = CommandResult(argv, rc, out, err)
        self._errors: dict[tuple[str, ...], HostError] = {}
        for key in ("command_errors", "files", "processes", "isakmpd"):
            if not isinstance(doc.get(key, []), list):
                raise SnapshotError(f"{path}: '{key}' must be a list")
        for i, c in enumerate(doc.get("command_errors", [])):
            where = f"{path}: command_errors[{i}]"
            argv = _argv(c, where)
            msg = _printable(c.get("message", "failed"), f"{where}: 'message'")
            kind = {"timeout": CommandTimeout, "not_found": CommandNotFound}.get(
                c.get("error"), HostError)
            self._errors[argv] = kind(msg)
        self._files: dict[str, dict[str, Any]] = {}
        for i, f in enumerate(doc.get("files", [])):
            if not isinstance(f, dict) or not isinstance(f.get("path"), str):
                raise SnapshotError(f"{path}: files[{i}]: needs a string 'path'")
            self._files[f["path"]] = f
        # isakmpd's FIFO answers; snapshots made before the FIFO query have none.
        self._isakmpd: dict[str, str | None | HostError] = {}
        for i, q in enumerate(doc.get("isakmpd", [])):
            where = f"{path}: isakmpd[{i}]"
            if not isinstance(q, dict) or not isinstance(q.get("tag"), str):
                raise SnapshotError(f"{where}: needs a string 'tag'")
            if "error" in q:
                self._isakmpd[q["tag"]] = HostError(str(q["error"]))
            elif q.get("result") is None or isinstance(q.get("result"), str):
                self._isakmpd[q["tag"]] = q.get("result")
            else:
                raise SnapshotError(f"{where}: 'result' must be a string or null")
        self._procs = tuple(_process(p, f"{path}: processes[{i}]")
                            for i, p in enumerate(doc.get("processes", [])))

    def info(self) -> HostInfo:
        return self._info

    def run(self, argv: Sequence[str], timeout_s: float) -> CommandResult:
        argv = tuple(argv)
        if argv in self._errors:
            raise self._errors[argv]
        try:
            return self._results[argv]
        except KeyError:
            raise CommandNotFound(f"`{' '.join(argv)}` is not in {self._path}") from None

    def read_file(self, path: str) -> str:
        entry = self._files.get(path)
        if entry is None or entry.get("exists") is False:
            raise FileNotFoundError(path)
        if not isinstance(entry.get("content"), str):
            raise HostError(f"{path}: its content is not in {self._path}")
        content: str = entry["content"]
        return content

    def stat_file(self, path: str) -> FileInfo:
        entry = self._files.get(path)
        if entry is None:
            raise HostError(f"{path}: not in {self._path}")
        if entry.get("exists") is False:
            return FileInfo(path, False)
        # A bad entry is that file's check UNKNOWN, not the whole replay refused.
        _file_entry(entry, f"{self._path}: file entry {path}")
        return FileInfo(path, True, int(entry["mode"], 8), entry["uid"], entry["gid"],
                        _printable(entry.get("owner", ""), ""),
                        _printable(entry.get("group", ""), ""), entry.get("size", 0))

    def write_file(self, path: str, text: str, mode: int) -> str | None:
        raise HostError(f"{self._path} is a snapshot: nothing can be written")

    def chmod(self, path: str, mode: int) -> None:
        raise HostError(f"{self._path} is a snapshot: nothing can be changed")

    def chown(self, path: str, uid: int, gid: int) -> None:
        raise HostError(f"{self._path} is a snapshot: nothing can be changed")

    def processes(self) -> tuple[Process, ...]:
        return self._procs

    def query_isakmpd(self, tag: str, timeout_s: float) -> str | None:
        isakmpd_query_line(tag)
        if tag not in self._isakmpd:
            raise HostError(f"isakmpd's answer to `C get {tag}` is not in {self._path}")
        answer = self._isakmpd[tag]
        if isinstance(answer, HostError):
            raise HostError(str(answer))
        return answer


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _load(path: str) -> dict[str, Any]:
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise SnapshotError(f"{path}: {size} bytes, more than a snapshot can be")
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        doc = json.loads(text)
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file (make one with `obsdvpn-agent snapshot DIR`)") from None
    except UnicodeDecodeError as e:
        raise SnapshotError(f"{path}: not a JSON snapshot: {e}") from None
    except RecursionError:
        raise SnapshotError(f"{path}: not a snapshot: JSON nested too deep") from None
    except ValueError as e:  # JSONDecodeError, or an integer of over 4300 digits
        raise SnapshotError(f"{path}: not a JSON snapshot: {str(e).split(';')[0]}") from None
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read: {e.strerror}") from None
    try:
        # JSON may spell a lone surrogate ("\ud800") that no output can print:
        # only with a \uD800-\uDFFF escape, so a document without one (any real
        # snapshot) skips re-encoding its megabytes.
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise SnapshotError(f"{path}: holds text that is not valid Unicode (a lone surrogate)") from None
    except RecursionError:
        raise SnapshotError(f"{path}: not a snapshot: JSON nested too deep") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError(f"{path}: not an obsdvpn-agent snapshot (no \"format\": \"{FORMAT}\")")
    if doc.get("version") != VERSION:
        raise SnapshotError(f"{path}: snapshot version {doc.get('version')!r}, "
                            f"this agent reads version {VERSION}")
    return doc


def _printable(value: object, where: str) -> str:
    """A snapshot's text that the CLI may print: one line, control characters escaped."""
    if not isinstance(value, str):
        raise SnapshotError(f"{where} must be a string")
    return first_line(value)


_UINT32 = 2**32 - 1


def _file_entry(entry: dict[str, object], where: str) -> None:
    """Check what stat_file() reads of a file entry: a mode stat(2) could give, ids, size."""
    mode = entry.get("mode")
    if not (isinstance(mode, str) and re.fullmatch("[0-7]{1,6}", mode)
            and int(mode, 8) <= 0o7777):
        raise SnapshotError(f"{where}: needs mode (octal) 0000 to 7777, got "
                            f"{first_line(str(mode), 20)!r}")
    for key, top in (("uid", _UINT32), ("gid", _UINT32), ("size", 2**63 - 1)):
        value = entry.get(key, 0 if key == "size" else None)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise SnapshotError(f"{where}: needs {key} as an integer from 0 to {top}")
    for key in ("owner", "group"):
        if not isinstance(entry.get(key, ""), str):
            raise SnapshotError(f"{where}: '{key}' must be a string")


def _field(doc: dict[str, Any], key: str, kind: type, path: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise SnapshotError(f"{path}: '{key}' must be a {kind.__name__}")
    return value


def _argv(entry: object, where: str) -> tuple[str, ...]:
    if not isinstance(entry, dict):
        raise SnapshotError(f"{where}: must be an object")
    argv = entry.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise SnapshotError(f"{where}: 'argv' must be a non-empty list of strings")
    return tuple(argv)


def _process(entry: object, where: str) -> Process:
    if not isinstance(entry, dict) or any(f not in entry for f in ("pid", "name", "cmdline")):
        raise SnapshotError(f"{where}: needs pid, name, cmdline")
    pid, name, cmdline = entry["pid"], entry["name"], entry["cmdline"]
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        raise SnapshotError(f"{where}: 'pid' must be a pid")
    if not isinstance(name, str):
        raise SnapshotError(f"{where}: 'name' must be a string")
    if not isinstance(cmdline, list) or not all(isinstance(a, str) for a in cmdline):
        raise SnapshotError(f"{where}: 'cmdline' must be a list of strings")
    return Process(pid, name, tuple(cmdline), str(entry.get("username", "")))


def _pools_only(text: str) -> str | None:
    """npppd.conf as a snapshot keeps it: its pool-address lines and nothing else, for
    the file may hold RADIUS `secret`s.  None (nothing kept) when it does not parse."""
    from ..parsers import ParseError
    from ..parsers.npppd_conf import parse_pools

    try:
        pools = parse_pools(text, NPPPD_CONF)
    except ParseError:
        return None
    lines = "".join(f"\tpool-address {r}\n" for r in pools.ranges)
    return ("# npppd.conf as obsdvpn-agent's snapshot keeps it: the pools only\n"
            f"ipcp IPCP {{\n{lines}}}\n")
