"""A local job's process (jobline_local.emulated.compute.spawn): its own process group, killed when
the stack's process ends, a missing command refused as Popen refuses it, with setpriv (vfork) and
without it (the child sets its death signal between fork and exec)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jobline_local.emulated import compute

PARENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from jobline_local.emulated import compute
    if sys.argv[1] == "without":
        compute.SETPRIV = None
    with open(sys.argv[2], "wb") as log:
        proc = compute.spawn(["sleep", "60"], Path("."), {"PATH": "/usr/bin:/bin"}, log)
    print(proc.pid, flush=True)
    sys.stdin.read()  # until the test closes it: then this "stack" ends, and the job must die with it
    """
)


def program(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("setpriv", ["with", "without"])
def test_a_job_runs_in_its_own_group_and_dies_with_the_stack(tmp_path: Path, setpriv: str) -> None:
    if setpriv == "with" and compute.SETPRIV is None:
        pytest.fail("setpriv (util-linux) is not on this machine")
    parent = subprocess.Popen(  # noqa: S603 - this test's own interpreter
        [sys.executable, "-c", PARENT, setpriv, str(tmp_path / "log")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = int(parent.stdout.readline())
    assert os.getpgid(pid) == pid
    command = b"/usr/bin/sleep" if setpriv == "with" else b"sleep"
    deadline = time.monotonic() + 10
    while program(pid) != command and time.monotonic() < deadline:
        time.sleep(0.05)  # until the fork has exec'd (with setpriv: setpriv has set the signal, then exec'd)
    assert program(pid) == command
    parent.stdin.close()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_with_setpriv_popen_is_not_given_a_preexec_fn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    real = subprocess.Popen

    def popen(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        seen.update(kwargs, args=args)
        return real(args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(compute, "SETPRIV", "/usr/bin/setpriv")
    monkeypatch.setattr(compute.subprocess, "Popen", popen)
    with open(tmp_path / "log", "wb") as log:
        compute.spawn(["true"], tmp_path, {"PATH": "/usr/bin:/bin"}, log).wait(10)
    assert "preexec_fn" not in seen
    assert seen["process_group"] == 0
    assert seen["args"][:4] == ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]


@pytest.mark.parametrize("setpriv", ["with", "without"])
@pytest.mark.parametrize("command", ["no-such-command-here", "./no-such-script"])
def test_a_missing_command_is_refused_as_popen_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setpriv: str, command: str
) -> None:
    if setpriv == "without":
        monkeypatch.setattr(compute, "SETPRIV", None)
    with open(tmp_path / "log", "wb") as log, pytest.raises(FileNotFoundError):
        compute.spawn([command], tmp_path, {"PATH": "/usr/bin:/bin"}, log)


def test_a_script_beside_the_catalog_runs(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/sh\necho ran "$1"\n')
    script.chmod(0o755)
    with open(tmp_path / "log", "wb") as log:
        assert compute.spawn(["./job.sh", "x y"], tmp_path, {"PATH": "/usr/bin:/bin"}, log).wait(10) == 0
    assert (tmp_path / "log").read_text() == "ran x y\n"
