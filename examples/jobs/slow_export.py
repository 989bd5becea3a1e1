"""Works for longer than its per-attempt timeout allows: Batch stops it."""

import time

for minute in range(10):
    print(f"exporting, minute {minute}", flush=True)
    time.sleep(60)
