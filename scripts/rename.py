"""Rename the package of this template: `make rename NAME=myproject` (or `python scripts/rename.py myproject`).

Renames src/<old>/ to src/<new>/ and rewrites every tracked text file that names the old package: imports,
`_target_` paths in conf/, pyproject.toml, the README title, tests, notebooks. The current name is read from
pyproject.toml, so a renamed copy can be renamed again. Run it on a clean git tree: `git diff` shows all it did.
Stdlib only, so it runs before any virtual environment exists.
"""

import keyword
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def current_name() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise SystemExit(f"error: NAME={name!r} must be a lowercase Python identifier (letters, digits, _)")
    return name


def tracked_files() -> list[Path]:
    """Files git tracks plus untracked ones it does not ignore; a plain walk outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "logs", "__pycache__"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def rename(old: str, new: str) -> list[Path]:
    pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(old)}(?![A-Za-z0-9])")  # also <old>_config
    changed = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:  # binary files never name the package
            continue
        if pattern.search(text):
            path.write_text(pattern.sub(new, text))
            changed.append(path)
    (ROOT / "src" / old).rename(ROOT / "src" / new)
    return changed


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/rename.py NEW_NAME")
    old, new = current_name(), check_name(sys.argv[1])
    if old == new:
        raise SystemExit(f"error: the package is already called {new!r}")
    if not (ROOT / "src" / old).is_dir():
        raise SystemExit(f"error: src/{old}/ not found; is this the template's root?")
    changed = rename(old, new)
    print(f"renamed {old} -> {new}: src/{new}/ and {len(changed)} files. Next: make test (reinstalls the package)")


if __name__ == "__main__":
    main()
