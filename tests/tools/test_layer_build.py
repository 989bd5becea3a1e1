"""The layer's build (layers/jobline/Makefile) keeps what the code needs and stays small, and the
handlers' imports stay light: what each imports is checked here, never how long it takes (the
figures are a benchmark: `python -m jobline_local.coldstart`, docs/PERFORMANCE.md).

The checks on the built layer read `sam build`'s output (`make test` builds before it tests); run
alone, they build the layer there first with the same Makefile target `sam build` runs.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest

from jobline_local import coldstart
from tests.cfn import ROOT

MAKEFILE = ROOT / "layers" / "jobline" / "Makefile"
SITE = coldstart.LAYER_BUILD / "python"
LAYER_LIMIT_MIB = 25  # issue 11
# Services kept although no jobline module creates their client, and who does.
KEPT_FOR_LIBRARIES = {"xray": "aws_xray_sdk.core.sampling.connector (centralized sampling, tracing on)"}
# Imported by no handler at import time (tracing off): the first call, or never, pays for them.
# (asyncio comes with pydantic-settings; Powertools' event_handler imports it with every resolver.)
LAZY = (
    "boto3",
    "botocore.session",
    "pydantic_settings",
    "aws_xray_sdk",
    "yaml",
    "asyncio",
    "aws_lambda_powertools.event_handler",
)
# Imported by one handler only on the calls that need them.
LAZY_IN = {"api": ("jobline.fanout_operations", "jobline.fanouts", "jobline.manifests")}  # the fan-out routes


def make_variable(name: str) -> str:
    match = re.search(rf"^{name} := (.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert match, f"{name} not set in {MAKEFILE}"
    return match.group(1).strip()


def clients_created(path: Path) -> set[str]:
    """Service names of every `<anything>.client("name")` / `create_client("name")` in a module."""
    return {
        node.args[0].value
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("client", "create_client")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def runtime_modules() -> list[Path]:
    return sorted([*(ROOT / "layers" / "jobline" / "jobline").rglob("*.py"), *(ROOT / "functions").glob("*/app.py")])


def built_layer() -> Path:
    """The layer as `sam build` leaves it; built here (layers/jobline/Makefile) when it is not."""
    if not SITE.is_dir():
        build = ["make", "-C", str(MAKEFILE.parent), "build-JoblineLayer", f"ARTIFACTS_DIR={coldstart.LAYER_BUILD}"]
        subprocess.run(build, check=True)  # noqa: S603 - the repository's Makefile, make from PATH
    return SITE


# ---------------------------------------------------------------- the service models kept
def test_kept_services_are_exactly_those_the_code_calls() -> None:
    called = set().union(*map(clients_created, runtime_modules()))
    kept = set(make_variable("AWS_SERVICES").split())
    assert {"dynamodb", "stepfunctions", "batch"} <= called, called  # the scan finds the clients
    assert called - kept == set(), "clients whose model the layer build deletes: add them to AWS_SERVICES"
    assert kept - called == set(KEPT_FOR_LIBRARIES), "kept models nothing calls: drop them from AWS_SERVICES"
    assert kept <= set(botocore.session.get_session().get_available_services())


def test_scan_sees_every_way_a_client_is_made(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        'import boto3\nboto3.client("s3")\nsession.client("sqs", region_name="x")\n'
        'deps.client("glue").start_job_run()\nsession.create_client("xray")\nsession.client(name)\n'
    )
    assert clients_created(module) == {"s3", "sqs", "glue", "xray"}


def test_built_layer_makes_a_client_of_every_kept_service() -> None:
    site = built_layer()
    services = make_variable("AWS_SERVICES").split()
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import boto3, botocore\n"
        "assert botocore.__file__.startswith(sys.argv[1]), botocore.__file__\n"
        "session = boto3.session.Session(region_name='us-east-1')\n"
        "for name in sys.argv[2:]: session.client(name, aws_access_key_id='a', aws_secret_access_key='b')\n"
        "print(sorted(session.get_available_services()))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-I", "-S", "-B", "-c", probe, str(site), *services],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(services))  # and nothing else is left


def test_built_layer_is_under_the_limit_and_ships_bytecode() -> None:
    site = built_layer()
    assert coldstart.layer_mib(site.parent) < LAYER_LIMIT_MIB
    for module in ("jobline/deps.py", "botocore/client.py", "pydantic/main.py"):
        source = site / module
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        assert compiled.is_file(), f"{compiled} missing: Lambda would compile {module} at every cold start"
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{compiled}: not an unchecked-hash pyc (flags {flags})"  # PEP 552


# ---------------------------------------------------------------- what the handlers import
PROBE = """
import json, os, sys
sys.path[:0] = sys.argv[1:]
import app
print(json.dumps({"modules": sorted(sys.modules), "tracer": type(app.tracer).__name__}))
"""


def imported_by(function: str, tracing: bool) -> dict:
    """Modules loaded by importing one handler in a fresh interpreter, as Lambda does (env from
    the template, tracing on or off), from the layer's sources and the development site-packages."""
    spec = coldstart.functions()[function]
    environment = {
        **coldstart.LAMBDA_ENVIRONMENT,
        **spec["environment"],
        "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "LAMBDA_TASK_ROOT": str(spec["code"]),
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-I", "-B", "-c", PROBE, str(spec["code"]), str(ROOT / "layers" / "jobline")],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("function", sorted(coldstart.functions()))
def test_handler_import_leaves_the_heavy_parts_to_first_use(function: str) -> None:
    report = imported_by(function, tracing=False)
    loaded = [name for name in (*LAZY, *LAZY_IN.get(function, ())) if name in report["modules"]]
    assert loaded == [], f"importing functions/{function}/app.py loads {loaded}: import them where used"
    assert report["tracer"] == "Untraced"
    never = re.compile(make_variable("NEVER_IMPORTED").replace("/", r"\."))
    uncompiled = [name for name in report["modules"] if never.search(f".{name}.")]
    assert uncompiled == [], f"modules the layer ships without bytecode: {uncompiled} (NEVER_IMPORTED)"


def test_tracing_on_brings_the_powertools_tracer() -> None:
    report = imported_by("state_change", tracing=True)
    assert report["tracer"] == "Tracer"
    assert "aws_xray_sdk.core" in report["modules"]


def test_pruned_extras_are_unused() -> None:
    sources = {path: path.read_text() for path in runtime_modules()}
    event_handler = re.compile(r"(from|import)\s+aws_lambda_powertools(\.event_handler|\s+import\s+.*event_handler)")
    assert not [p for p, text in sources.items() if event_handler.search(text)], "Powertools' event_handler is pruned"
    assert not [p for p, text in sources.items() if re.search(r"yaml\.C\w*(Loader|Dumper)", text)], "libyaml is pruned"


# ---------------------------------------------------------------- the benchmark itself runs
def test_coldstart_measure_reports_every_function() -> None:
    built_layer()
    report = coldstart.measure(runs=1, names=["notify"])
    assert set(report["functions"]) == {"notify"}
    figure = report["functions"]["notify"]
    assert figure["cpu_ms"] > 0
    assert report["boto3_cpu_ms"] > 0
    assert figure["ratio"] == pytest.approx(figure["cpu_ms"] / report["boto3_cpu_ms"], abs=0.01)
    assert figure["xray"] is False  # tracing off by default
    assert "notify" in coldstart.render(report)
