"""Leaving a torchrun worker: the exit code and every buffered line survive skipping finalization."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_exit_worker_keeps_the_code_and_flushes_buffered_output():
    program = (
        "import logging, sys\n"
        "from nmt.distributed import exit_worker\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"
        "print('stdout line')\n"  # block-buffered into a pipe: lost unless flushed
        "logging.getLogger('x').warning('log line')\n"
        "exit_worker(3)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 3
    assert result.stdout == "stdout line\n"
    assert result.stderr == "log line\n"


def test_a_torchrun_worker_with_a_bad_config_exits_with_one_error_line(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1"}
    result = subprocess.run(
        [str(BIN / "nmt-train"), "--config", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing.yaml" in result.stderr, result.stderr
