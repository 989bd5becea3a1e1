"""`python -m jobline_local`: the same as `jobline local`."""

from jobline_local.cli import main

main()
