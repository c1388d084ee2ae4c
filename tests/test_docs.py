"""The docs: the knob reference (docs/knobs.md) names only keys and tests that exist; the README stays a guide."""

import functools
import re
import tempfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hyperlab.config.cli import compose, compose_with_hydra
from tests.conftest import CONF, ROOT

KNOB_SECTION = (ROOT / "docs" / "knobs.md").read_text()
ROWS = [line.split("|")[1:-1] for line in KNOB_SECTION.splitlines() if line.startswith("| ") and "`" in line]


def test_table_is_not_empty():
    assert len(ROWS) >= 30


@functools.cache
def composed(overrides: tuple[str, ...]):
    return compose(list(overrides), Path(tempfile.mkdtemp()))


@pytest.mark.parametrize("row", ROWS, ids=[r[0].strip() for r in ROWS])
def test_every_key_exists_in_the_composed_config(row):
    tokens = re.findall(r"`([^`]+)`", row[1])
    groups = [t[:-1] for t in tokens if t.endswith("=")]
    overrides = [t for t in tokens if "=" in t and not t.endswith("=")]
    keys = [t for t in tokens if "=" not in t]
    for group in groups:
        assert (CONF / group).is_dir(), group
    cfg = composed(tuple(overrides))
    for key in keys:  # the sweeper's keys live in the `hydra` node
        found = compose_with_hydra(overrides) if key.startswith("hydra.") else cfg
        assert OmegaConf.select(found, key, default="<absent>") != "<absent>", key


@pytest.mark.parametrize("row", ROWS, ids=[r[0].strip() for r in ROWS])
def test_every_named_test_exists(row):
    named = re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", row[3])
    assert named, row
    for file, function in named:
        source = (ROOT / "tests" / file).read_text()
        assert not function or f"def {function}(" in source, f"{file}::{function}"


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_is_a_guide_not_a_results_log():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_relative_link_points_at_a_file(doc):
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text())
    for link in links:
        if "://" not in link:
            assert (doc.parent / link).exists(), f"{doc.name}: {link}"
