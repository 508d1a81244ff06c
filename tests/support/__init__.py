"""Helpers every test tier shares: presets with overrides, the CLI in a subprocess, and waiting on a condition.

Imported as `support` (the tests folder is on sys.path through the root conftest); fixtures stay in
conftest.py files, helpers live here, so no test module imports from another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent.parent


def quick_preset(name: str = "mlp-quadrants", **overrides):
    """A packaged preset with `section.key` overrides, validated (e.g. quick_preset(**{"train.max_steps": 20}))."""
    from workbench.presets import load_preset

    return load_preset(name, [f"{key}={value!r}" if isinstance(value, str) else f"{key}={_toml(value)}"
                              for key, value in overrides.items()])


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) if not isinstance(v, str) else repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v) if not isinstance(v, str) else repr(v)}" for k, v in value.items()) + "}"
    return repr(value)


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None):
    """Run `python -m workbench ARGS` in a subprocess; returns CompletedProcess (text)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd)


def show_run(run_id: str) -> dict:
    """`workbench show RUN_ID --json`, as another terminal would read a run: the parsed record."""
    result = run_cli("show", run_id, "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def start_torchrun(script: str, *args: str) -> subprocess.Popen:
    """`torchrun --nproc_per_node=2 tests/support/SCRIPT ARGS` (one intra-op thread a rank), pipes open."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                             str(REPO / "tests" / "support" / script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_recorded_run(process: subprocess.Popen, store, timeout: float = 120.0) -> dict:
    """The first run `process` records in `store`; fails at once, with its stderr, if it ends first."""
    def recorded():
        if process.poll() is not None:
            raise AssertionError(f"the process ended early: {process.stderr.read()[-3000:]}")
        return next(iter(store.list_runs()), None)

    return wait_for(recorded, timeout=timeout, what="the run to be recorded")


def stop_torchrun(process: subprocess.Popen, run_id: str) -> list[dict]:
    """`workbench stop RUN_ID` from another process; once the program exits (it must exit 0), the JSON
    line each rank printed (`{"rank": ...}`)."""
    assert run_cli("stop", run_id, timeout=60).returncode == 0
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-3000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"rank"')]


def wait_for(predicate: Callable[[], Any], timeout: float = 120.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def pilot_wait_for(pilot, predicate: Callable[[], Any], timeout: float = 60.0,
                         what: str = "condition") -> Any:
    """`wait_for` inside a Pilot test: lets the app run between checks instead of sleeping."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)
