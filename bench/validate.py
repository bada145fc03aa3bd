"""Validation speed: `tikflow validate` on 500 recipes, against the floor of just parsing the YAML.

Goal (issue 6): the CLI validates 500 recipes in under 2 s on the 2-core machine.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def make_corpus(directory: Path, count: int) -> list[Path]:
    shipped = sorted((ROOT / "definitions").glob("*.yaml"))
    files = []
    for i in range(count):
        source = shipped[i % len(shipped)].read_text()
        name = source.split("\nrecipe: ", 1)[1].split("\n", 1)[0]
        target = directory / f"r{i:04d}.yaml"
        target.write_text(source.replace(f"\nrecipe: {name}\n", f"\nrecipe: {name}-{i}\n"))
        files.append(target)
    return files


def run(count: int = 500) -> dict[str, Any]:
    from tikflow.loader import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        files = make_corpus(Path(tmp), count)
        start = time.perf_counter()
        for f in files:
            yaml.load(f.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        floor_s = time.perf_counter() - start

        start = time.perf_counter()
        for f in files:
            load_recipe(f)
        in_process_s = time.perf_counter() - start

        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "tikflow.cli", "validate", "-q", tmp], capture_output=True, text=True
        )
        cli_s = time.perf_counter() - start
        assert done.returncode == 0, done.stderr[-500:]
    return {
        "benchmark": "validate",
        "recipes": count,
        "yaml_parse_only_s": round(floor_s, 3),
        "load_and_validate_s": round(in_process_s, 3),
        "cli_total_s": round(cli_s, 3),
        "ratio_vs_yaml_parse": round(in_process_s / floor_s, 2),
        "goal_cli_under_s": 2.0,
        "goal_met": cli_s < 2.0,
    }


if __name__ == "__main__":
    from bench.common import emit, machine

    # No engine here, so no `--quick` variant: 500 recipes take seconds either way.
    emit({**run(), "quick": "--quick" in sys.argv[1:], "machine": machine()})
