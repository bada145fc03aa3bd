"""Docker HEALTHCHECK of a tikflow worker: healthy while its health file is fresh.

The worker (`worker.py`) touches `TIKFLOW_HEALTH_FILE` every `TIKFLOW_HEALTH_INTERVAL_S` seconds
while all its Temporal workers poll, and removes it when it shuts down. This check passes when the
file was touched within three intervals, so one slow tick is not a failure. Standard library only:
it runs every few seconds and must not pay for importing the SDK.

Exit status: 0 healthy, 1 unhealthy (Docker's convention).
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    """Check the health file's age; print why when unhealthy."""
    path = os.environ.get("TIKFLOW_HEALTH_FILE")
    if not path:
        print("TIKFLOW_HEALTH_FILE is not set", file=sys.stderr)
        return 1
    interval = float(os.environ.get("TIKFLOW_HEALTH_INTERVAL_S") or 10)
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        print(f"{path} is missing: the worker is starting, stopping or not polling", file=sys.stderr)
        return 1
    if age > 3 * interval:
        print(f"{path} is {age:.0f}s old (limit {3 * interval:.0f}s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
