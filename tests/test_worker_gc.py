"""`tune_gc`: a worker process's garbage collector thresholds come from `TIKFLOW_GC_THRESHOLD`."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from activities.config import DEFAULT_GC_THRESHOLD, ConfigError, EngineConfig
from tikflow.worker import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """tune_gc changes this (the test) process: put Python's collector back afterwards."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_a_worker_collects_less_often_and_freezes_its_code(restored_gc):
    assert tune_gc(EngineConfig.from_env({})) == DEFAULT_GC_THRESHOLD
    assert gc.get_threshold() == DEFAULT_GC_THRESHOLD
    # The objects alive at startup (this test session's modules among them) are frozen out.
    assert gc.get_freeze_count() > 10_000


def test_the_thresholds_can_be_set_or_left_to_python(restored_gc):
    assert tune_gc(EngineConfig.from_env({"TIKFLOW_GC_THRESHOLD": " 5000, 15,30 "})) == (5000, 15, 30)
    assert gc.get_threshold() == (5000, 15, 30)
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    assert tune_gc(EngineConfig.from_env({"TIKFLOW_GC_THRESHOLD": "python"})) == (700, 10, 10)
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("value", ["20000,20", "a,b,c", "0,10,10", "-1,10,10", "1,2,3,4"])
def test_a_bad_threshold_is_refused_and_changes_nothing(value, restored_gc):
    before = gc.get_threshold()
    with pytest.raises(ConfigError, match=r"^TIKFLOW_GC_THRESHOLD=.*expected three positive integers"):
        tune_gc(EngineConfig.from_env({"TIKFLOW_GC_THRESHOLD": value}))
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(
    ("command", "prefix"), [(["worker"], "tikflow worker: "), (["dev", "--home", "unused"], "tikflow: ")]
)
def test_the_worker_commands_refuse_a_bad_threshold_in_one_line(command, prefix, tmp_path):
    env = {**os.environ, "TIKFLOW_GC_THRESHOLD": "lots", "TEMPORAL_ADDRESS": "127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "tikflow.cli", *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"{prefix}TIKFLOW_GC_THRESHOLD='lots': expected three positive integers like 20000,20,20, or 'python'"
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "unused").exists()  # nothing was started
