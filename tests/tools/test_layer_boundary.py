"""The Lambda layer carries the runtime only: nothing in layers/jobline/ (or a function's code)
imports the operator tools (jobline_tools), the local stack (jobline_local) or their libraries.

Checked twice: statically, every import statement of every module; dynamically, every module
imported in a fresh interpreter that sees only the layer and site-packages, as a function would.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cfn import ROOT

LAYER = ROOT / "layers" / "jobline"
FUNCTIONS = ROOT / "functions"
TOOLING = ("jobline_tools", "jobline_local")
# Libraries only the tools use (sam-cli brings them into the development environment).
TOOLING_LIBRARIES = ("click", "rich")

# Run as `python -I -c PROBE LAYER_DIR FORBIDDEN`: -I leaves out the working directory, PYTHONPATH
# and the user site, so the interpreter sees the layer directory and site-packages only (where the
# tools are installed: being importable is no excuse). A finder placed first on sys.meta_path sees
# every forbidden import and blames the nearest jobline module on the stack, however indirect
# (through a third-party library, say).
PROBE = """
import importlib, json, pkgutil, sys
layer, forbidden = sys.argv[1], tuple(sys.argv[2].split(","))
report = {"imported": [], "failed": {}, "pulled_in": {}}

class Blame:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in forbidden:
            frame = sys._getframe(1)
            while frame:
                importer = frame.f_globals.get("__name__", "")
                if importer.split(".")[0] in forbidden:
                    return None  # the forbidden package importing its own parts
                if importer == "jobline" or importer.startswith("jobline."):
                    report["pulled_in"].setdefault(importer, []).append(name)
                    return None
                frame = frame.f_back
        return None  # let the real finders find it (or not)

sys.meta_path.insert(0, Blame)
sys.path.insert(0, layer)
import jobline
assert jobline.__file__.startswith(layer), jobline.__file__
for module in pkgutil.walk_packages(jobline.__path__, "jobline."):
    try:
        importlib.import_module(module.name)
        report["imported"].append(module.name)
    except Exception as error:
        report["failed"][module.name] = f"{type(error).__name__}: {error}"
report["loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps(report))
"""


def forbidden_imports(path: Path, forbidden: tuple[str, ...] = TOOLING + TOOLING_LIBRARIES) -> list[str]:
    """`line N: import X` for every import of a forbidden top-level package in one module,
    `importlib.import_module("X...")` and `__import__("X...")` included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        else:
            continue
        found += [f"line {node.lineno}: import {name}" for name in names if name.split(".")[0] in forbidden]
    return found


def runtime_modules() -> list[Path]:
    return sorted([*(LAYER / "jobline").rglob("*.py"), *FUNCTIONS.glob("*/app.py")])


def probe(layer: Path) -> dict:
    forbidden = ",".join(TOOLING + TOOLING_LIBRARIES)
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-I", "-c", PROBE, str(layer), forbidden],
        capture_output=True,
        text=True,
        check=False,
        cwd=layer,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_no_runtime_module_imports_tooling() -> None:
    modules = runtime_modules()
    assert len(modules) > 10, modules
    offences = [f"{path.relative_to(ROOT)} {hit}" for path in modules for hit in forbidden_imports(path)]
    assert not offences, "the Lambda code imports tooling:\n" + "\n".join(offences)


def test_every_layer_module_imports_without_tooling() -> None:
    report = probe(LAYER)
    expected = {
        "jobline." + str(path.relative_to(LAYER / "jobline").with_suffix("")).replace("/", ".")
        for path in (LAYER / "jobline").rglob("*.py")
        if path.name != "__init__.py"
    }
    assert not report["failed"], report["failed"]
    assert expected <= set(report["imported"]), sorted(expected - set(report["imported"]))
    assert not report["pulled_in"], f"layer modules that load tooling: {report['pulled_in']}"
    assert report["loaded"] == []


def test_layer_requirements_leave_tooling_out() -> None:
    pins = [
        line.split("==")[0].split("[")[0].strip().lower()
        for line in (LAYER / "requirements.txt").read_text().splitlines()
    ]
    assert not set(pins) & {*TOOLING_LIBRARIES, "jobline-tools", "jobline_tools"}, pins


# ---------------------------------------------------------------- the checks can fail
def test_static_check_names_each_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text(
        "import json\n"
        "import jobline_local.stack\n"
        "from jobline_tools.codegen import render_schedules\n"
        "from . import sibling\n"
        "def f():\n"
        "    import importlib\n"
        "    importlib.import_module('jobline_tools.cli')\n"
        "    return __import__('rich')\n"
    )
    assert forbidden_imports(module) == [
        "line 2: import jobline_local.stack",
        "line 3: import jobline_tools.codegen",
        "line 7: import jobline_tools.cli",
        "line 8: import rich",
    ]


@pytest.mark.parametrize("tooling", ["jobline_tools.cli", "click"])
def test_dynamic_check_blames_the_importing_module(tmp_path: Path, tooling: str) -> None:
    package = tmp_path / "jobline"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a_user.py").write_text("import json\nfrom jobline import leaky\n")  # imported first
    (package / "leaky.py").write_text(f"import {tooling}\n")
    report = probe(tmp_path)
    assert report["imported"] == ["jobline.a_user", "jobline.leaky"]
    assert report["pulled_in"] == {"jobline.leaky": [tooling.split(".")[0], *([tooling] if "." in tooling else [])]}
    assert tooling in report["loaded"]
