"""Forking: rename the package in a copy and the copy passes its own tests; local config; developer habits."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import CONF, FAST_TIER, ROOT


def copy_of_the_template(dest):
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=fork", "-c", "user.email=fork@example.org"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fork"]):
        subprocess.run(git + command, cwd=dest, check=True, capture_output=True)
    return dest


def rename(copy, name):
    return subprocess.run([sys.executable, str(copy / "scripts" / "rename.py"), name], capture_output=True, text=True)


@pytest.mark.parametrize("name", ["My-Project", "9lives", "class", ""])
def test_rename_rejects_names_that_are_not_python_packages(name, tmp_path):
    copy = copy_of_the_template(tmp_path)
    result = rename(copy, name)
    assert result.returncode != 0 and (copy / "src" / "hyperlab").is_dir()
    assert "must be a lowercase Python identifier" in result.stderr or "usage" in result.stderr or not name


@pytest.mark.slow
def test_renamed_copy_passes_its_own_fast_tier(tmp_path):
    copy = copy_of_the_template(tmp_path / "fork")
    result = rename(copy, "myproject")
    assert result.returncode == 0, result.stderr
    assert not (copy / "src" / "hyperlab").exists() and (copy / "src" / "myproject" / "train.py").is_file()
    files = [p for p in copy.rglob("*") if p.is_file() and ".git" not in p.relative_to(copy).parts]
    leftovers = [str(p.relative_to(copy)) for p in files if b"hyperlab" in p.read_bytes()]
    assert leftovers == []
    assert "_target_: myproject.models.MLP" in (copy / "conf" / "model" / "mlp.yaml").read_text()
    assert (copy / "README.md").read_text().startswith("# myproject\n")
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    tests = subprocess.run(  # as the fork's `make test` runs it: one worker per core
        [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider", "-m", FAST_TIER],
        cwd=copy,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout.splitlines()[-1] and "failed" not in tests.stdout.splitlines()[-1]


def test_the_fork_runs_the_tier_make_test_runs():
    assert f'-m "{FAST_TIER}"' in (ROOT / "Makefile").read_text()


def test_machine_local_settings_in_conf_local_apply_and_are_git_ignored(tmp_path):
    conf = shutil.copytree(CONF, tmp_path / "conf")
    (conf / "local").mkdir()
    (conf / "local" / "default.yaml").write_text("# @package _global_\ntrainer:\n  max_epochs: 3\nbatch_size: 32\n")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["lr=0.01"])
    assert (cfg.trainer.max_epochs, cfg.batch_size, cfg.data.batch_size, cfg.lr) == (3, 32, 32, 0.01)
    assert "conf/local/" in (ROOT / ".gitignore").read_text().splitlines()


def test_pre_commit_runs_ruff_lint_and_format_and_basic_hooks():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hook_ids = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "trailing-whitespace", "end-of-file-fixer", "check-yaml"} <= hook_ids


def test_github_workflow_is_a_thin_wrapper_around_ci_run():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    commands = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert "bash .ci/run" in commands  # the same entry point as this project's CI: it cannot drift
