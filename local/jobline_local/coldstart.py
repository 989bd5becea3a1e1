"""Cold start figures: each handler's import in a fresh interpreter, against `import boto3`.

Lambda imports a function's handler module once per execution environment, from the function's
code and the layer (`/opt/python`), both read-only: no bytecode is ever written there, so a module
the layer ships without its `.pyc` is compiled again on every cold start. Each figure here is the
median of `runs` fresh interpreters (`python -I -S -B`: no site-packages, no user site, no working
directory, no bytecode written, as on Lambda's read-only /var/task and /opt) that see only the
function's code and the built layer, with a clean environment holding the variables the template
gives the function plus those Lambda sets.
The baseline is `import boto3` from the same layer under the same conditions.

A benchmark (`make bench`, `jobline-local coldstart`), never a test assertion: a timing depends on
the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jobline_local.deploy.template import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER_BUILD = ROOT / ".aws-sam" / "build" / "JoblineLayer"
TARGET_RATIO = 1.5  # issue 11: every handler's cold import at most 1.5 x `import boto3`
# Set by Lambda in every execution environment (values as on AWS, credentials made up).
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
LAMBDA_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    "AWS_ACCESS_KEY_ID": "ASIACOLDSTART",
    "AWS_SECRET_ACCESS_KEY": "coldstart",
    "AWS_SESSION_TOKEN": "coldstart",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "_HANDLER": "app.handler",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
}
# The probe times the import alone (the interpreter's own start is the same for every figure), in
# CPU time (what an import spends, even on a loaded machine) and wall time.
PROBE = """
import sys, time
sys.path[:0] = sys.argv[2:]
wall, cpu = time.perf_counter(), time.process_time()
__import__(sys.argv[1])
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
import json
print(json.dumps({"cpu_ms": cpu * 1000, "wall_ms": wall * 1000, "modules": len(sys.modules),
                  "boto3": "boto3" in sys.modules, "xray": "aws_xray_sdk" in sys.modules}))
"""


def functions(template: Path = TEMPLATE) -> dict[str, dict[str, Any]]:
    """{function directory name: {"logical_id", "code", "environment"}} for every function whose
    code is in functions/, its environment as the template sets it (intrinsics become placeholders)."""
    parsed = parse_yaml(template.read_text())
    shared = parsed.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    found = {}
    for logical_id, resource in parsed["Resources"].items():
        properties = resource.get("Properties", {})
        code = str(properties.get("CodeUri", ""))
        if resource.get("Type") != "AWS::Serverless::Function" or not code.startswith("functions/"):
            continue
        own = properties.get("Environment", {}).get("Variables", {})
        variables = {**shared, **own}
        environment = {name: value if isinstance(value, str) else "placeholder" for name, value in variables.items()}
        found[Path(code).name] = {"logical_id": logical_id, "code": template.parent / code, "environment": environment}
    return found


def _import_once(module: str, paths: list[Path], environment: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-I", "-S", "-B", "-c", PROBE, module, *map(str, paths)],
        env=environment,
        cwd=paths[0],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {module} from {paths[0]} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def layer_mib(layer: Path = LAYER_BUILD) -> float:
    """The layer's unzipped size (the bytes of its files), in MiB."""
    return round(sum(path.stat().st_size for path in layer.rglob("*") if path.is_file()) / 2**20, 2)


def measure(
    runs: int = 5, layer: Path = LAYER_BUILD, names: Iterable[str] | None = None, tracing: bool = False
) -> dict[str, Any]:
    """Median cold import CPU time of each function's handler module and of `import boto3`, in ms,
    and each handler's ratio to boto3 (target: at most TARGET_RATIO). The runs are interleaved
    (boto3, then every handler, `runs` times) and the ratio is the median of each round's, so a
    change in the machine's load moves both sides. `layer` is the built layer (`sam build`, that
    is `make build`); `tracing` turns the Powertools Tracer on (POWERTOOLS_TRACE_DISABLED=false)."""
    site = layer / "python"
    if not site.is_dir():
        raise FileNotFoundError(f"no built layer at {layer}: run `make build` first")
    every = functions()
    chosen = sorted(names or every)
    if unknown := set(chosen) - set(every):
        raise ValueError(f"unknown functions {sorted(unknown)}: choose from {sorted(every)}")
    base = {**LAMBDA_ENVIRONMENT, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    probes = {"boto3": ("boto3", [site], {**base, "LAMBDA_TASK_ROOT": str(site)})}
    for name in chosen:
        function = every[name]
        environment = {
            **base,
            **function["environment"],
            "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
            "AWS_LAMBDA_FUNCTION_NAME": f"jobline-{function['logical_id']}",
            "LAMBDA_TASK_ROOT": str(function["code"]),
        }
        probes[name] = ("app", [function["code"], site], environment)
    rounds = [{name: _import_once(*probe) for name, probe in probes.items()} for _ in range(runs)]
    figures = {}
    for name in probes:
        samples = [sample[name] for sample in rounds]
        figures[name] = {
            "cpu_ms": round(statistics.median(s["cpu_ms"] for s in samples), 1),
            "wall_ms": round(statistics.median(s["wall_ms"] for s in samples), 1),
            "ratio": round(statistics.median(s[name]["cpu_ms"] / s["boto3"]["cpu_ms"] for s in rounds), 2),
            **{key: samples[-1][key] for key in ("modules", "boto3", "xray")},
        }
    boto3 = figures.pop("boto3")
    return {
        "runs": runs,
        "layer": str(layer),
        "layer_mib": layer_mib(layer),
        "tracing": tracing,
        "boto3_cpu_ms": boto3["cpu_ms"],
        "boto3_wall_ms": boto3["wall_ms"],
        "target_ratio": TARGET_RATIO,
        "functions": figures,
        "max_ratio": max((figure["ratio"] for figure in figures.values()), default=0.0),
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"cold import, median of {report['runs']} fresh interpreters, CPU ms (wall ms) and ratio to boto3"
        f" (tracing {'on' if report['tracing'] else 'off'}; layer {report['layer_mib']} MiB unzipped)",
        f"  {'import boto3':<18} {report['boto3_cpu_ms']:>7.1f} ({report['boto3_wall_ms']:>7.1f})  1.00x",
    ]
    for name, figure in report["functions"].items():
        flag = "" if figure["ratio"] <= report["target_ratio"] else f"  over {report['target_ratio']}x"
        lines.append(
            f"  {name:<18} {figure['cpu_ms']:>7.1f} ({figure['wall_ms']:>7.1f})  {figure['ratio']:.2f}x"
            f"  {figure['modules']} modules{', X-Ray SDK' if figure['xray'] else ''}{flag}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobline_local.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per figure (the median is shown)")
    parser.add_argument("--layer", type=Path, default=LAYER_BUILD, help="the built layer (sam build's output)")
    parser.add_argument("--tracing", action="store_true", help="with the Powertools Tracer on (X-Ray SDK)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("functions", nargs="*", help="function directories (default: all)")
    args = parser.parse_args(argv)
    report = measure(args.runs, args.layer, args.functions or None, args.tracing)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
