"""jobline on one machine: a local AWS with the whole stack (see stack.py, client.py)."""
