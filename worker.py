"""The tikflow worker: `python worker.py` (or `python -m worker`, `tikflow worker`).

The composition root lives in `tikflow.worker`, inside the installed package, so an installed
tikflow and this checkout run the same code; its docstring lists every environment variable the
worker reads.
"""

from tikflow.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
