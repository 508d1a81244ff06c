"""Fixtures for every tier (unit/, tui/, e2e/): an isolated runs dir, working directory and cache per test.

Helpers (quick_preset, run_cli, wait_for) live in tests/support, imported as `support`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Fuzz tests draw the same examples on every run, so a suite that passed passes again on a fresh clone;
# `HYPOTHESIS_PROFILE=explore pytest tests/unit/test_fuzz_*.py` draws new ones to look for new bugs
# (put what it finds in the test's explicit examples).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


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
