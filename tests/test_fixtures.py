"""The fixture tree the other tests stand on: complete, sourced, and inside the repository.

A sample-driven test over an empty folder would pass by testing nothing, so the
corpus folders must hold samples (conftest.sample_files() also refuses an empty
glob at collection time); every sample must keep the SOURCES line that says where
it came from; and no test may reach outside the repository for its data.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, SAMPLES, sample_files

# Every folder of the corpus that a test globs or reads.
CORPUS_FOLDERS = (
    "derived/ifconfig", "derived/ipsecctl", "derived/npppctl", "derived/pfctl",
    "derived/rcctl", "derived/sysctl",
    "derived2/ifconfig", "derived2/ipsecctl", "derived2/npppctl", "derived2/pfctl",
    "derived2/rcctl", "derived2/sysctl",
    "ifconfig/real", "ipsecctl/real", "ipsecctl/regress-nvf", "ipsecctl/sanitized",
    "pfctl/real", "pfctl/regress-loaded", "pfctl/regress-nv", "pfctl/regress-sr",
    "rcctl/real", "sysctl/real", "logs/real",
)
# Reference notes, not samples: they are their own source.
NOT_SAMPLES = {"SOURCES.md", "README.md", "FACTS.md", "FORMATS.md"}


@pytest.mark.parametrize("folder", CORPUS_FOLDERS)
def test_every_corpus_folder_has_samples(folder):
    assert [p for p in (SAMPLES / folder).glob("*") if p.is_file()], \
        f"no sample in {SAMPLES / folder}"


def test_sample_files_refuses_an_empty_glob():
    with pytest.raises(FileNotFoundError, match="no sample matches"):
        sample_files("derived/pfctl/*.txt", "derived/no-such-command/*.txt")


def test_the_reference_material_is_there():
    for rel in ("FACTS.md", "FORMATS.md", "SOURCES.md", "isakmpd/README.md",
                "logs/formats.md", "logs/formats_catalog.tsv", "logs/SOURCES.md",
                "derived2/SOURCES.md"):
        assert (SAMPLES / rel).stat().st_size > 0, rel


def _sources_of(path: Path) -> str:
    """The SOURCES.md that covers a fixture: the nearest one up its tree."""
    for folder in path.parents:
        if (folder / "SOURCES.md").is_file():
            return (folder / "SOURCES.md").read_text()
        if folder == FIXTURES:
            break
    raise AssertionError(f"no SOURCES.md above {path}")


FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*")
                       if p.is_file() and p.name not in NOT_SAMPLES
                       and "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.relative_to(FIXTURES).as_posix())
def test_every_fixture_has_a_sources_line(path):
    assert path.name in _sources_of(path), f"{path.relative_to(FIXTURES)} has no SOURCES line"


def test_no_test_reads_outside_the_repository():
    # The corpus used to be read from a checkout beside this one; a plain clone has none.
    outside = re.compile(r"\.\./shared|/work/shared|parents\[2\]")
    offenders = [f"{p.relative_to(ROOT)}:{n}"
                 for folder in ("tests", "agent", "bench")
                 for p in sorted((ROOT / folder).rglob("*.py"))
                 if FIXTURES not in p.parents
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if outside.search(line) and "outside = re.compile" not in line]
    assert not offenders
