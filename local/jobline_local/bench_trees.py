"""The trees the bench measures side by side: the working tree and a baseline git ref, checked out
in a worktree of its own (reused by commit) under .local-stack/bench-trees/.

Each tree's local stack is started from that tree (its template, functions, layer, local stand-ins:
PYTHONPATH puts the tree's packages ahead of the editable install) through the working tree's
meter (jobline_local/meter.py), so both are counted by the same code. The baseline reuses this
venv when its pinned dependencies are the same (requirements-dev.lock and pyproject's
dependencies), else it gets its own (`make venv` in its worktree)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from jobline_local import meter
from jobline_local.client import LocalStack

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("layers/jobline", "tools", "local")


@dataclass(frozen=True)
class Tree:
    label: str
    root: Path
    python: str

    def environ(self, extra: dict[str, str]) -> dict[str, str]:
        paths = [str(self.root / d) for d in PACKAGE_DIRS]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}

    def run_python(self, code: str) -> str:
        """Run `code` with this tree's packages; its stdout."""
        done = subprocess.run(  # noqa: S603 - our interpreter, our code
            [self.python, "-c", code], env=self.environ({}), cwd=self.root, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def stack(self, catalog: Path, state_dir: Path, env: dict[str, str], **options: object) -> LocalStack:
        return LocalStack(
            catalog=catalog,
            template=self.root / "template.yaml",
            state_dir=state_dir,
            user_agent_appid="jobline-bench",
            launcher=[self.python, meter.__file__],
            env=self.environ(env),
            cwd=self.root,
            **options,  # type: ignore[arg-type]
        )


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603,S607


def working_tree() -> Tree:
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return Tree(f"after ({_git('rev-parse', '--short', 'HEAD')}{' + changes' if dirty else ''})", ROOT, sys.executable)


def _dependencies(lock: str, pyproject: str) -> tuple[str, str]:
    project = tomllib.loads(pyproject).get("project", {})
    return lock, json.dumps([project.get("dependencies"), project.get("optional-dependencies")], sort_keys=True)


def baseline_tree(ref: str) -> Tree:
    commit = _git("rev-parse", "--short", f"{ref}^{{commit}}")
    path = ROOT / ".local-stack" / "bench-trees" / commit
    if not (path / "template.yaml").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _git("worktree", "add", "--detach", "--force", str(path), commit)
    ours = _dependencies((ROOT / "requirements-dev.lock").read_text(), (ROOT / "pyproject.toml").read_text())
    theirs = _dependencies((path / "requirements-dev.lock").read_text(), (path / "pyproject.toml").read_text())
    python = sys.executable
    if ours != theirs:
        print(f"baseline {commit}: its dependencies differ from this venv's; making its own (make venv)", flush=True)
        subprocess.run(["make", "-C", str(path), "venv"], check=True)  # noqa: S603,S607
        python = str(path / ".venv" / "bin" / "python")
    return Tree(f"before ({commit})", path, python)
