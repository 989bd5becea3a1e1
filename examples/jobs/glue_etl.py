"""Runs jobline's example Glue job (glue/example_job.py) with the --name arguments Glue passes,
after the extra seconds the run asks for (--jobline_arg_seconds)."""

import runpy
import sys
import time
from pathlib import Path

arguments = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
time.sleep(float(arguments.get("--jobline_arg_seconds", "0")))
runpy.run_path(str(Path(__file__).resolve().parents[2] / "glue" / "example_job.py"), run_name="__main__")
