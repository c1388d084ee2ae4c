"""The layer contract of pyproject.toml holds: no upward import, no circle (import-linter, as `make lint` runs it)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def run_contracts(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_layer_contract_is_kept():
    result = run_contracts(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # an upward import: training may not reach the builders above it
        ("training/callbacks.py", "from hyperlab.builders import build_module", "is not allowed to import"),
        # a circle inside a package: sweeper -> select, while select reaches the sweeper's nested helper
        ("search/nested.py", "from hyperlab.search import sweeper", "No cycles are allowed in hyperlab.search"),
        # the config checks must stay torch-free
        ("config/rules.py", "import torch", "hyperlab.config.rules -> torch"),
    ],
)
def test_a_broken_layer_fails_the_contract(tmp_path, module, line, broken):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    target = copy / "src" / "hyperlab" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(copy / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout[-3000:]
