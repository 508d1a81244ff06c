"""Paths a user typed expand `~` as a shell does, and a `~name` naming no user stays as typed."""

from __future__ import annotations

from pathlib import Path

from workbench.paths import user_path


def test_tilde_is_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path("~/data.csv") == tmp_path / "data.csv"


def test_a_tilde_name_that_is_no_user_stays_as_typed():
    assert user_path("~no-such-user-4711/data.csv") == Path("~no-such-user-4711/data.csv")
    assert user_path("~0") == Path("~0")
