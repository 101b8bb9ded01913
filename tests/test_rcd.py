"""rc.d/obsdvpn_agent: valid ksh, the rc.subr(8) variables OpenBSD's rc.d
expects, and a pexp that matches a real agent process the way rc.subr's
`pgrep -T 0 -q -xf "${pexp}"` does.

The script is run by mksh, Debian's build of the pdksh family that OpenBSD's
/bin/ksh also comes from, with a stand-in rc.subr (the script itself sources
/etc/rc.d/rc.subr exactly as OpenBSD's own scripts do; the tests copy it and
rewrite that one line, and for the live process also the daemon path, since
this machine's console script is in the venv, not /usr/local/bin).
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "rc.d" / "obsdvpn_agent"
RC_SUBR_LINE = ". /etc/rc.d/rc.subr\n"
DAEMON_LINE = 'daemon="/usr/local/bin/obsdvpn-agent"\n'
CONSOLE_SCRIPT = Path(sys.executable).parent / "obsdvpn-agent"

# What OpenBSD's rc.subr does to the variables before the script's own lines
# run (rc.subr rev 1.160: daemon_flags from ${name}_flags of rc.conf.local,
# here from the environment), then an rc_cmd that records them instead of
# starting anything.  "start" also runs rc_pre, as rc_cmd start does.
STAND_IN_RC_SUBR = r"""
[ -n "${KSH_VERSION}" ] || { echo "$0: wrong shell, use /bin/ksh" >&2; exit 1; }
_name=${0##*/}
eval _rcflags=\${${_name}_flags}
[ -n "${_rcflags}" ] && daemon_flags=${_rcflags}
rc_cmd() {
	print -r -- "action=$1"
	print -r -- "name=${_name}"
	print -r -- "daemon=${daemon}"
	print -r -- "daemon_flags=${daemon_flags}"
	print -r -- "daemon_user=${daemon_user}"
	print -r -- "daemon_logger=${daemon_logger}"
	print -r -- "pexp=${pexp}"
	print -r -- "rc_bg=${rc_bg}"
	print -r -- "rc_reload=${rc_reload}"
	if typeset -f rc_pre >/dev/null; then
		print -r -- "rc_pre=defined"
		if [ "$1" = start ]; then
			rc_pre
			print -r -- "rc_pre_exit=$?"
		fi
	else
		print -r -- "rc_pre=undefined"
	fi
}
"""


def mksh() -> str:
    path = shutil.which("mksh")
    if path is None:
        pytest.fail("mksh is not installed: `make deps` (apt-get install mksh) provides it")
    return path


def run_script(tmp_path: Path, action: str = "check", flags: str | None = None,
               daemon: Path | None = None) -> dict[str, str]:
    """Run a copy of the rc.d script under mksh with the stand-in rc.subr."""
    text = SCRIPT.read_text()
    assert text.count(RC_SUBR_LINE) == 1 and text.count(DAEMON_LINE) == 1
    (tmp_path / "rc.subr").write_text(STAND_IN_RC_SUBR)
    text = text.replace(RC_SUBR_LINE, f". {tmp_path / 'rc.subr'}\n")
    if daemon is not None:
        text = text.replace(DAEMON_LINE, f'daemon="{daemon}"\n')
    copy = tmp_path / "obsdvpn_agent"  # rc.subr takes the service name from $0
    copy.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("obsdvpn_agent")}
    env.pop("OBSDVPN_AGENT_CONFIG", None)
    if flags is not None:
        env["obsdvpn_agent_flags"] = flags
    p = subprocess.run([mksh(), str(copy), action], capture_output=True, text=True, env=env,
                       timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    return dict(line.split("=", 1) for line in p.stdout.splitlines())


def test_script_is_valid_ksh():
    p = subprocess.run([mksh(), "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    # rc.subr refuses any other shell ("wrong shell, use /bin/ksh").
    assert SCRIPT.read_text().startswith("#!/bin/ksh\n")


def test_syntax_check_catches_a_broken_script(tmp_path):
    broken = tmp_path / "obsdvpn_agent"
    broken.write_text(SCRIPT.read_text().replace("rc_pre() {", "rc_pre() {\n\tif then"))
    assert subprocess.run([mksh(), "-n", str(broken)], capture_output=True,
                          check=False).returncode != 0


def test_script_defines_the_rc_subr_variables(tmp_path):
    v = run_script(tmp_path)
    assert v["action"] == "check"
    assert v["name"] == "obsdvpn_agent"
    assert v["daemon"] == "/usr/local/bin/obsdvpn-agent"
    assert v["daemon_flags"] == "serve"
    assert v["daemon_user"] == "_obsdvpn"
    assert v["daemon_logger"] == "daemon.info"
    assert v["rc_bg"] == "YES"
    assert v["rc_reload"] == "NO"
    assert v["rc_pre"] == "defined"
    assert v["pexp"] == r"[^ ]*/python3(\.[0-9]+)? /usr/local/bin/obsdvpn-agent serve"


@pytest.mark.parametrize("cmdline, matches", [
    # pkg_add'ed python, the console script's #! names the versioned binary
    ("/usr/local/bin/python3.12 /usr/local/bin/obsdvpn-agent serve --listen 192.0.2.1:8469", True),
    ("/usr/local/bin/python3 /usr/local/bin/obsdvpn-agent serve --listen 192.0.2.1:8469", True),
    # a venv whose script is linked into /usr/local/bin
    (("/usr/local/obsdvpn-agent/bin/python3 /usr/local/bin/obsdvpn-agent serve "
     "--listen 192.0.2.1:8469"), True),
    # other flags, no interpreter, another interpreter, another command
    ("/usr/local/bin/python3.12 /usr/local/bin/obsdvpn-agent serve --listen 192.0.2.1:8470", False),
    ("/usr/local/bin/obsdvpn-agent serve --listen 192.0.2.1:8469", False),
    ("/usr/local/bin/python2.7 /usr/local/bin/obsdvpn-agent serve --listen 192.0.2.1:8469", False),
    ("/usr/local/bin/python3.12 /usr/local/bin/obsdvpn-agent check --listen 192.0.2.1:8469", False),
])
def test_pexp_follows_the_flags_rcctl_set(tmp_path, cmdline, matches):
    # `rcctl set obsdvpn_agent flags serve --listen 192.0.2.1:8469` writes
    # obsdvpn_agent_flags to rc.conf.local; rc.subr puts it in daemon_flags.
    v = run_script(tmp_path, flags="serve --listen 192.0.2.1:8469")
    assert v["daemon_flags"] == "serve --listen 192.0.2.1:8469"
    # pgrep -x: the whole command line must match the extended regex.
    assert bool(re.fullmatch(v["pexp"], cmdline)) is matches


def test_rc_pre_validates_the_configuration_serve_will_load(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text('[vpn]\nnetwork = "10.0.0.0/24"\n')
    bad = tmp_path / "bad.conf"
    bad.write_text('[vpn]\nnetwork = "not a network"\n')
    ok = run_script(tmp_path, "start", f"--config {good} serve", CONSOLE_SCRIPT)
    assert ok["rc_pre_exit"] == "0"
    # `obsdvpn-agent config` exits 3 on a configuration it rejects.
    refused = run_script(tmp_path, "start", f"--config {bad} serve --listen 127.0.0.1:0",
                         CONSOLE_SCRIPT)
    assert refused["rc_pre_exit"] == "3"


def wait_for_line(proc: subprocess.Popen, word: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if word in line:
                return line
    pytest.fail(f"no {word!r} from the agent within {timeout_s} s; it said: {''.join(seen)}")


def test_pexp_matches_a_running_agent_like_pgrep_xf(tmp_path, sample_snapshot):
    if not CONSOLE_SCRIPT.exists():
        pytest.fail(f"{CONSOLE_SCRIPT}: the installed console script is missing (pip install -e .)")
    pgrep = shutil.which("pgrep")
    if pgrep is None:
        pytest.fail("pgrep is missing (Debian's procps provides it)")
    flags = f"--snapshot {sample_snapshot} serve --listen 127.0.0.1:0"
    v = run_script(tmp_path, flags=flags, daemon=CONSOLE_SCRIPT)
    pexp = v["pexp"]
    # rc_start runs "${daemon} ${daemon_flags}" through sh; the kernel then
    # execs the #! interpreter with the script path as its first argument.
    env = {k: v for k, v in os.environ.items() if k != "OBSDVPN_AGENT_CONFIG"}
    proc = subprocess.Popen([str(CONSOLE_SCRIPT), *shlex.split(flags)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(proc, "serving", 30)
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        cmdline = " ".join(a.decode() for a in argv)
        assert re.fullmatch(r".*/python3(\.[0-9]+)?", argv[0].decode()), cmdline
        assert argv[1].decode() == str(CONSOLE_SCRIPT)
        assert re.fullmatch(pexp, cmdline), (pexp, cmdline)
        found = subprocess.run([pgrep, "-f", "-x", pexp], capture_output=True, text=True,
                               check=False)
        assert str(proc.pid) in found.stdout.split(), (pexp, cmdline, found)
        # -x anchors both ends: the same process with other flags is not ours.
        other = pexp.replace(" serve ", " serve --verbose ")
        assert other != pexp
        assert subprocess.run([pgrep, "-f", "-x", other], check=False).returncode == 1
        proc.send_signal(signal.SIGTERM)  # what rc.subr's rc_stop sends
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
