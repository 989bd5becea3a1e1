"""The local stack, in this process: moto in server mode on 127.0.0.1 with jobline's adaptations,
the template's resources, and the local stand-ins for Lambda, SQS event sources, EventBridge
Scheduler, Batch compute, and the compute of Batch service jobs (SageMaker training), SageMaker
processing jobs and Glue job runs (jobline_local.emulated).

`jobline local` runs it in the foreground; `jobline_local.LocalStack` runs it as a child process
(tests, demo, benchmark) and talks to the control endpoints under /_jobline/ on the same port.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.config import Config

from jobline_local import adaptations, contracts
from jobline_local.activity import Activity
from jobline_local.apicalls import ApiCounter
from jobline_local.client import state_dir_owner
from jobline_local.deploy.deployer import Deployer
from jobline_local.deploy.deployment import Deployment
from jobline_local.deploy.template import parse_yaml, translate
from jobline_local.emulated.scheduler import LocalClock, LocalScheduler, iso

log = logging.getLogger("jobline_local")
REPO_ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
CONTROL_PREFIX = "/_jobline/"


def default_template() -> Path:
    here = Path.cwd() / "template.yaml"
    return here if here.exists() else REPO_ROOT / "template.yaml"


@dataclass
class StackOptions:
    template: Path = field(default_factory=default_template)
    catalog: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    region: str = "us-east-1"
    stack_name: str = "jobline-local"
    parameters: dict[str, str] = field(default_factory=dict)
    state_dir: Path = field(default_factory=lambda: Path.cwd() / ".local-stack")
    clock_speed: float = 1.0
    clock_start: datetime | None = None
    lambda_concurrency: int = 2
    job_slots: int = 4
    prewarm: bool = True


class Clients:
    """boto3 clients of the local stand-ins, pointed at the local endpoint (thread-safe, cached)."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.session = boto3.Session(region_name=region, **{k.lower(): v for k, v in CREDENTIALS.items()})
        self.endpoint = endpoint
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._config = Config(user_agent_appid="jobline-local", retries={"max_attempts": 3, "mode": "standard"})

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, endpoint_url=self.endpoint, config=self._config)
            return self._clients[service]


def load_template(path: Path, catalog: Path | None) -> dict[str, Any]:
    """template.yaml; with a catalog override, its generated block (schedules, S3 and bus rules,
    run state machines) is rendered from that catalog as `make generate` would render it, the
    definitions inline (statemachines/ holds the packaged catalog's)."""
    text = path.read_text()
    if catalog is not None:
        from jobline.catalog import load_catalog
        from jobline_tools import codegen

        rendered = codegen.render(load_catalog(catalog), codegen.handwritten_rules(text), inline_definitions=True)
        text = codegen.replace_block(text, rendered)
    return parse_yaml(text)


class Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.activity = Activity()
        self.api_calls = ApiCounter()
        self.clock = LocalClock(options.clock_start, options.clock_speed)
        self.deployment: Deployment | None = None
        self.info: dict[str, Any] = {}
        self._server: Any = None
        self._services: list[Any] = []
        self.stopped = threading.Event()

    # ------------------------------------------------------------ start
    def start(self) -> dict[str, Any]:
        started = time.monotonic()
        options = self.options
        state_dir = options.state_dir.resolve()
        if (owner := state_dir_owner(state_dir)) is not None:
            raise RuntimeError(f"{state_dir} is in use by the local stack with pid {owner}: give another --state-dir")
        # Only what a previous stack left here: the state dir itself may hold anything else.
        (state_dir / "stack.json").unlink(missing_ok=True)
        shutil.rmtree(state_dir / "logs", ignore_errors=True)
        (state_dir / "logs").mkdir(parents=True)
        adaptations.install()
        contracts.install()  # AWS's contracts on every request the server receives (docs/CONTRACTS.md)
        endpoint = self._start_server()
        self._configure_moto(endpoint)
        clients = Clients(endpoint, options.region)

        catalog = options.catalog.resolve() if options.catalog else None
        sam = load_template(options.template, catalog)
        account = clients.client("sts").get_caller_identity()["Account"]
        parameters = {k: v for k, v in options.parameters.items()}
        translated = translate(sam, options.template.parent, parameters, options.region, account, options.stack_name)
        extra_env = {"CATALOG_PATH": str(catalog)} if catalog else {}
        deployer = Deployer(clients.session, endpoint, translated, parameters, options.stack_name)
        self.deployment = deployment = deployer.deploy(extra_environment=extra_env)

        from jobline.settings import PACKAGED_CATALOG
        from jobline_local.emulated.batch import LocalBatch
        from jobline_local.emulated.event_source_mappings import DynamoDBStreamPoller, SqsPoller
        from jobline_local.emulated.lambda_service import LambdaService

        base_env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
            "AWS_REGION": options.region,
            "AWS_DEFAULT_REGION": options.region,
            "AWS_ENDPOINT_URL": endpoint,
            **CREDENTIALS,
        }
        logs = state_dir / "logs"
        self.lambdas = LambdaService(
            deployment,
            endpoint,
            clients,
            base_env,
            logs / "lambda",
            self.activity,
            options.clock_speed,
            options.lambda_concurrency,
        )
        (logs / "batch").mkdir()
        self.batch = LocalBatch(
            deployment.account_id,
            options.region,
            catalog or PACKAGED_CATALOG,
            logs / "batch",
            base_env,
            clients,
            self.activity,
            options.job_slots,
        )
        from jobline_local.emulated.batch_service_compute import LocalServiceJobs
        from jobline_local.emulated.glue import LocalGlue
        from jobline_local.emulated.sagemaker_processing import LocalProcessing

        backend_args = (deployment.account_id, options.region, catalog or PACKAGED_CATALOG)
        self.processing = LocalProcessing(
            *backend_args, logs / "sagemaker", base_env, clients, self.activity, options.job_slots
        )
        self.training = LocalServiceJobs(
            *backend_args, logs / "training", base_env, clients, self.activity, options.job_slots
        )
        self.glue = LocalGlue(
            *backend_args, logs / "glue", base_env, clients, self.activity, options.job_slots, options.clock_speed
        )
        adaptations.set_hooks(
            lambda_target=self.lambdas.deliver_rule_target,
            lambda_invoke=self.lambdas.moto_invoke,
            batch_job=self.batch.submit,
            processing_job=self.processing.submit,
            service_job=self.training.submit,
            glue_job_run=self.glue.submit,
            engine_seconds=lambda seconds: seconds / options.clock_speed,
        )
        self.lambdas.start(prewarm=options.prewarm)
        poller_types = {"sqs": SqsPoller, "dynamodb": DynamoDBStreamPoller}
        self.pollers = [
            poller_types[m.kind](m, self.lambdas, clients, options.clock_speed)
            for m in deployment.event_source_mappings
            if m.enabled
        ]
        for poller in self.pollers:
            poller.start()
        self.scheduler = LocalScheduler(clients, self.clock, self._fire_schedule_target, self.activity)
        self.clock.restart()
        self.scheduler.start()
        self._services = [
            self.scheduler,
            *self.pollers,
            self.lambdas,
            self.batch,
            self.processing,
            self.training,
            self.glue,
        ]

        self.info = {
            "endpoint": endpoint,
            "region": options.region,
            "account_id": deployment.account_id,
            "stack_name": options.stack_name,
            "pid": os.getpid(),
            "outputs": deployment.outputs,
            "functions": {spec.logical_id: spec.name for spec in deployment.functions.values()},
            "resources": {lid: physical.ref for lid, physical in deployment.resources.items()},
            "catalog": str(catalog or PACKAGED_CATALOG),
            "state_dir": str(state_dir),
            "logs": {
                "lambda": str(logs / "lambda"),
                "batch": str(logs / "batch"),
                "sagemaker": str(logs / "sagemaker"),
                "training": str(logs / "training"),
                "glue": str(logs / "glue"),
            },
            "clock": {"now": iso(self.clock.now()), "speed": options.clock_speed},
            "skipped": deployment.skipped,
            "moto": adaptations.PINNED_MOTO,
            "started_in_seconds": round(time.monotonic() - started, 2),
        }
        (state_dir / "stack.json").write_text(json.dumps(self.info, indent=2))
        return self.info

    def _start_server(self) -> str:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            # Keep-alive: SDK clients reuse their connections instead of one TCP connect (and one
            # server thread) per call.
            protocol_version = "HTTP/1.1"

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        moto_app = DomainDispatcherApplication(create_backend_app)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            path = environ.get("PATH_INFO", "")
            if path.startswith(CONTROL_PREFIX):
                return self._control(environ, start_response)
            if not path.startswith("/moto-api"):
                self.api_calls.observe(environ)
            return moto_app(environ, start_response)

        self._server = make_server(
            self.options.host, self.options.port, app, threaded=True, request_handler=QuietHandler
        )
        port = self._server.server_port
        os.environ["MOTO_PORT"] = str(port)  # moto's Step Functions engine calls localhost:$MOTO_PORT
        threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True).start()
        return f"http://{self.options.host}:{port}"

    @staticmethod
    def _configure_moto(endpoint: str) -> None:
        import requests

        requests.post(
            f"{endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
        )
        # Only the local compute moves a Batch job; moto's state manager must not advance it.
        requests.post(
            f"{endpoint}/moto-api/state-manager/set-transition",
            json={"model_name": "batch::job", "transition": {"progression": "manual", "times": 10**12}},
            timeout=10,
        )

    def _fire_schedule_target(self, target: dict[str, Any], payload: Any, schedule_arn: str) -> None:
        arn = target["Arn"]
        spec = self.lambdas.spec(arn)
        if spec is not None:
            self.lambdas.invoke_async(spec, payload)
        elif arn.split(":")[2] in ("sqs", "sns", "events"):
            self.lambdas.send_to_arn(arn, json.dumps(payload), {})
        else:
            self.activity.note("schedule", f"{schedule_arn}: target {arn} is not supported locally", logging.WARNING)
            dlq = target.get("DeadLetterConfig", {}).get("Arn")
            if dlq:
                self.lambdas.send_to_arn(dlq, json.dumps(payload), {})

    # ------------------------------------------------------------ control endpoints
    def status(self) -> dict[str, Any]:
        return {
            "api_calls": self.api_calls.snapshot(),
            "counters": dict(self.activity.counters),
            "lambda_idle": self.lambdas.idle,
            "sqs_in_flight": sum(p.in_flight for p in self.pollers),
            "batch_active": self.batch.active,
            "backend_jobs_active": self.processing.active + self.training.active + self.glue.active,
            "schedules_fired": self.scheduler.fired,
            "clock": {"now": iso(self.clock.now()), "speed": self.clock.speed},
        }

    def _control(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"][len(CONTROL_PREFIX) :].strip("/")
        method = environ["REQUEST_METHOD"]
        if method == "POST":  # read what was sent, so a kept-alive connection stays in step
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        query = parse_qs(environ.get("QUERY_STRING", ""))
        status, result = "200 OK", None
        if path == "info":
            result = self.info
        elif path == "status":
            result = self.status()
        elif path == "activity":
            result = self.activity.since(int(query.get("after", ["0"])[0]))
        elif path == "clock":
            result = {"now": iso(self.clock.now()), "speed": self.clock.speed}
        elif path == "stop" and method == "POST":
            threading.Thread(target=self.stop, daemon=True).start()
            result = {"stopping": True}
        else:
            status, result = "404 Not Found", {"error": f"no control endpoint {method} /_jobline/{path}"}
        data = json.dumps(result, default=str).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    # ------------------------------------------------------------ stop
    def stop(self) -> None:
        if self.stopped.is_set():
            return
        adaptations.clear_hooks()
        for service in self._services:
            try:
                service.stop()
            except Exception as error:
                log.warning("stopping %s: %r", type(service).__name__, error)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.stopped.set()
