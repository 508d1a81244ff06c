"""Shared fixtures: an isolated runs dir, working directory and cache for every test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test runs in its own cwd with its own runs dir and cache, so nothing leaks between tests."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(work / "runs"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield work


@pytest.fixture
def runs_dir(isolated) -> Path:
    return isolated / "runs"


@pytest.fixture
def store(runs_dir):
    from workbench.store import RunStore

    s = RunStore(runs_dir)
    yield s
    s.close()


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
