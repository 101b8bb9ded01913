"""The OpenBSD port (packaging/openbsd/sysutils/obsdvpn-agent) packs what the
wheel installs: its pkg/PLIST is compared, line by line and in update-plist's
order, with the list derived from a wheel built here from this checkout.

How a wheel file becomes a PLIST line is what lang/python's MODPY_PYBUILD does
(see openbsd/ports devel/py-click/pkg/PLIST): the package under
lib/python${MODPY_VERSION}/site-packages/, each module with its two compiled
files in ${MODPY_PYCACHE}, each directory as its own line, console scripts in
bin/, and data files under ${PREFIX}, except that the port's pre-configure moves
the man page from share/man to man (OpenBSD's place, an @man line).
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
PORT = ROOT / "packaging" / "openbsd" / "sysutils" / "obsdvpn-agent"
SITE = "lib/python${MODPY_VERSION}/site-packages/"
# What the PLIST variables expand to on a python 3.11 host, for sorting only.
EXPAND = {"${MODPY_VERSION}": "3.11", "${MODPY_PYCACHE}": "__pycache__/",
          "${MODPY_PYC_MAGIC_TAG}": "cpython-311.", "${MODPY_PYOEXTENSION}": "opt-1.pyc",
          "${MODPY_DISTV}": "0.1.0"}
# Lines the port adds beyond the wheel's files (packing-list annotations).
# doas.conf(5): permit [options] identity ...
DOAS_OPTIONS = r"^permit (?:(?:nopass|nolog|persist|keepenv) )*"
PORT_ONLY = re.compile(r"^@(newgroup|newuser|rcscript|sample|owner|group|mode|comment)( |$)")


def plist_lines(names: list[str], version: str) -> list[str]:
    """The PLIST lines for the files of a wheel, in update-plist's order."""
    files: set[str] = set()
    dist_info = f"obsdvpn_agent-{version}.dist-info/"
    data = f"obsdvpn_agent-{version}.data/data/"
    for name in names:
        if name.endswith("/"):
            continue
        if name.startswith(data):
            rel = name[len(data):]
            # the port's pre-configure: share/man/man8 -> man/man8
            rel = re.sub(r"^share/man/", "man/", rel)
            files.add(rel)
        elif name.startswith(dist_info):
            files.add(SITE + "obsdvpn_agent-${MODPY_DISTV}.dist-info/" + name[len(dist_info):])
        else:
            path = PurePosixPath(name)
            files.add(SITE + name)
            if path.suffix == ".py":
                cache = f"{SITE}{path.parent}/${{MODPY_PYCACHE}}{path.stem}.${{MODPY_PYC_MAGIC_TAG}}"
                files.add(cache + "${MODPY_PYOEXTENSION}")
                files.add(cache + "pyc")
    # directories of our own: every parent under site-packages and share/examples
    dirs: set[str] = set()
    for f in files:
        parts = f.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i]) + "/"
            if d.startswith(SITE) and d != SITE or d.startswith("share/examples/") \
                    and d != "share/examples/":
                dirs.add(d)
    # a module directory's ${MODPY_PYCACHE} directory is a line of its own
    dirs |= {f.rsplit("${MODPY_PYCACHE}", 1)[0] + "${MODPY_PYCACHE}/"
             for f in files if "${MODPY_PYCACHE}" in f}
    lines = [f"@man {f}" if f.startswith("man/") else f for f in files | dirs]
    return sorted(lines, key=sort_key)


def sort_key(line: str) -> str:
    """update-plist's order: by the expanded path, a directory without its slash."""
    path = line.removeprefix("@man ")
    for var, value in EXPAND.items():
        path = path.replace(var, value)
    return path.rstrip("/")


def console_scripts(entry_points: str) -> list[str]:
    section = re.search(r"^\[console_scripts\]\n((?:.+\n?)*)", entry_points, re.MULTILINE)
    assert section, entry_points
    return [line.split("=")[0].strip() for line in section.group(1).splitlines() if "=" in line]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                        str(ROOT)], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    [whl] = out.glob("obsdvpn_agent-*.whl")
    return whl


def expected_plist(wheel: Path) -> list[str]:
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        scripts = console_scripts(z.read(
            f"obsdvpn_agent-{version}.dist-info/entry_points.txt").decode())
    return sorted(plist_lines(names, version) + [f"bin/{s}" for s in scripts], key=sort_key)


def plist() -> list[str]:
    return (PORT / "pkg" / "PLIST").read_text().splitlines()


def test_plist_is_what_the_wheel_installs(wheel: Path) -> None:
    files = [line for line in plist() if not PORT_ONLY.match(line)]
    expected = expected_plist(wheel)
    missing = sorted(set(expected) - set(files), key=sort_key)
    extra = sorted(set(files) - set(expected), key=sort_key)
    assert not missing and not extra, f"PLIST lacks {missing}\nPLIST has extra {extra}"
    assert files == expected, "PLIST is not in update-plist's order"


def test_the_wheel_carries_the_man_page_and_the_examples(wheel: Path) -> None:
    lines = expected_plist(wheel)
    assert "@man man/man8/obsdvpn-agent.8" in lines
    assert "bin/obsdvpn-agent" in lines
    assert {"share/examples/obsdvpn-agent/obsdvpn-alerts.yml",
            "share/examples/obsdvpn-agent/alertmanager.yml",
            "share/examples/obsdvpn-agent/obsdvpn-dashboard.json"} <= set(lines)
    assert SITE + "obsdvpn_agent/cli.py" in lines
    assert SITE + "obsdvpn_agent/${MODPY_PYCACHE}cli.${MODPY_PYC_MAGIC_TAG}pyc" in lines


def test_plist_mapping_of_one_module() -> None:
    """The mapping itself, on a two-file wheel: a module, its caches, its dirs."""
    assert plist_lines(["obsdvpn_agent/__init__.py", "obsdvpn_agent/py.typed",
                        "obsdvpn_agent-1.0.dist-info/METADATA"], "1.0") == [
        SITE + "obsdvpn_agent/",
        SITE + "obsdvpn_agent-${MODPY_DISTV}.dist-info/",
        SITE + "obsdvpn_agent-${MODPY_DISTV}.dist-info/METADATA",
        SITE + "obsdvpn_agent/__init__.py",
        SITE + "obsdvpn_agent/${MODPY_PYCACHE}/",
        SITE + "obsdvpn_agent/${MODPY_PYCACHE}__init__.${MODPY_PYC_MAGIC_TAG}"
               "${MODPY_PYOEXTENSION}",
        SITE + "obsdvpn_agent/${MODPY_PYCACHE}__init__.${MODPY_PYC_MAGIC_TAG}pyc",
        SITE + "obsdvpn_agent/py.typed",
    ]


def test_plist_creates_the_user_the_rc_script_and_the_state_directory() -> None:
    lines = plist()
    group = [line for line in lines if line.startswith("@newgroup ")]
    user = [line for line in lines if line.startswith("@newuser ")]
    assert len(group) == len(user) == 1
    gname, gid = group[0].split()[1].split(":")
    fields = user[0].split(" ", 1)[1].split(":")
    # @newuser name:uid:group:login class:comment:home:shell
    assert gname == fields[0] == "_obsdvpn" and fields[1] == fields[2] == gid
    assert fields[3] == "daemon" and fields[5:] == ["/var/empty", "/sbin/nologin"]
    assert "@rcscript ${RCDIR}/obsdvpn_agent" in lines
    assert (PORT / "pkg" / "obsdvpn_agent.rc").exists()
    assert "@sample ${LOCALSTATEDIR}/db/obsdvpn-agent/" in lines
    # annotations first, as update-plist writes them
    first_file = next(i for i, line in enumerate(lines) if not line.startswith("@")
                      or line.startswith("@man "))
    assert all(not PORT_ONLY.match(line) for line in lines[first_file:])


def test_the_rc_script_runs_serve_as_obsdvpn_under_the_python_it_was_built_for() -> None:
    rc = (PORT / "pkg" / "obsdvpn_agent.rc").read_text()
    assert 'daemon="${TRUEPREFIX}/bin/obsdvpn-agent"' in rc
    assert 'daemon_user="_obsdvpn"' in rc and 'daemon_flags="serve"' in rc
    # a console script's process is "<python> <script> <args>"
    assert 'pexp="${MODPY_BIN} ${daemon}${daemon_flags:+ ${daemon_flags}}"' in rc
    assert rc.rstrip().endswith("rc_cmd $1")


def test_makefile_follows_the_python_module_conventions() -> None:
    mk = (PORT / "Makefile").read_text()
    assert re.search(r"^MODULES =\s+lang/python$", mk, re.MULTILINE)
    assert re.search(r"^MODPY_PYBUILD =\s+setuptools$", mk, re.MULTILINE)
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert version and re.search(rf"^MODPY_DISTV =\s+{re.escape(version.group(1))}$", mk, re.MULTILINE)
    # the ports that package pyproject.toml's dependencies (openbsd/ports paths)
    deps = re.search(r"^RUN_DEPENDS =((?:.*\\\n)*.*)$", mk, re.MULTILINE)
    assert deps
    assert re.findall(r"[\w-]+/[\w.-]+", deps.group(1)) == [
        "devel/py-click", "sysutils/py-prometheus_client", "sysutils/py-psutil"]
    assert re.search(r"^PERMIT_PACKAGE =\s+Yes$", mk, re.MULTILINE)
    assert mk.rstrip().endswith(".include <bsd.port.mk>")


def test_pkg_readme_covers_doas_cron_and_syslog() -> None:
    readme = (PORT / "pkg" / "README").read_text()
    assert readme.startswith("+---")
    for needed in ("doas.conf", "obsdvpn-agent doas-rules", "crontab", "--on-change",
                   "syslog.conf", "rcctl enable obsdvpn_agent", "nolog"):
        assert needed in readme, needed
    # the doas rules are the ones the agent prints, each with nolog (whatever
    # the order of the options the agent writes)
    from conftest import run_cli
    r = run_cli("doas-rules")
    assert r.returncode == 0, r.stderr
    readme_rules = {re.sub(DOAS_OPTIONS, "", line.strip()): line.split()
                    for line in readme.splitlines() if line.strip().startswith("permit ")}
    printed = [line for line in r.stdout.splitlines() if line.startswith("permit ")]
    assert printed and len(readme_rules) == len(printed)
    for rule in printed:
        tail = re.sub(DOAS_OPTIONS, "", rule)
        assert tail in readme_rules, rule
        assert {"nopass", "nolog"} <= set(readme_rules[tail]), readme_rules[tail]


def write_plist() -> None:
    """Rewrite pkg/PLIST from a fresh wheel, keeping its annotations (run this
    file as a script after adding or removing a module or a data file)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp,
                        str(ROOT)], check=True)
        [whl] = Path(tmp).glob("obsdvpn_agent-*.whl")
        head = [line for line in plist() if PORT_ONLY.match(line)]
        (PORT / "pkg" / "PLIST").write_text("\n".join(head + expected_plist(whl)) + "\n")


if __name__ == "__main__":
    write_plist()


def test_the_state_directory_is_sticky_and_group_obsdvpn_and_the_modes_are_reset() -> None:
    lines = plist()
    at = lines.index("@sample ${LOCALSTATEDIR}/db/obsdvpn-agent/")
    assert lines[at - 2:at] == ["@mode 1775", "@group _obsdvpn"]
    assert lines[at + 1:at + 3] == ["@mode", "@group"]   # the files after it: defaults again
