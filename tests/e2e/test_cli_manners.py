"""Command-line manners: a closed pipe, the runs table, colour only on terminals, words that say what they mean."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support import REPO
from workbench.cli import EXIT_PIPE_CLOSED, main, use_colour
from workbench.store import RunStore


def record_runs(runs_dir, count=3) -> list[str]:
    store = RunStore(runs_dir)
    ids = [store.create_run("mlp-quadrants", {"name": "mlp-quadrants"}) for _ in range(count)]
    store.finish_run(ids[0], "completed", steps=1500)
    store.close()
    return ids


@pytest.mark.parametrize("args", [["runs"], ["runs", "--json"], ["show", "RUN"], ["export", "RUN"]])
def test_a_closed_pipe_ends_quietly(runs_dir, args):
    """`workbench runs | head -1`: the reader is gone before the output is written."""
    run_id = record_runs(runs_dir)[0]
    args = [run_id if arg == "RUN" else arg for arg in args]
    child = subprocess.Popen([sys.executable, "-m", "workbench", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=runs_dir.parent)
    child.stdout.close()  # the reader leaves at once, as `head -1` does after its line
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == EXIT_PIPE_CLOSED
    assert err == "", err  # no traceback, no "Exception ignored ... BrokenPipeError"


def test_head_of_the_runs_table_in_a_shell(runs_dir):
    record_runs(runs_dir, count=200)  # more than a pipe holds, so the writer outlives `head`
    done = subprocess.run(f"set -o pipefail; {sys.executable} -m workbench runs | head -1", shell=True,
                          executable="/bin/bash", capture_output=True, text=True, timeout=120, cwd=runs_dir.parent,
                          env={"PYTHONPATH": str(REPO), "WORKBENCH_RUNS_DIR": str(runs_dir), "PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == ["run_id", "preset", "status", "steps", "started_at", "ended_at", "world_size"]
    assert done.stderr == "" and done.returncode in (0, EXIT_PIPE_CLOSED)


def test_the_runs_table_has_a_header_and_the_readme_columns(runs_dir, capsys):
    ids = record_runs(runs_dir, count=2)
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run_id", "preset", "status", "steps", "started_at", "ended_at", "world_size"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    done, running = rows[ids[0]], rows[ids[1]]
    # completed: steps, start and end (date + time each) and the world size
    assert done[2] == "completed" and done[3] == "1,500" and len(done) == 9 and done[-1] == "1"
    assert running[2] == "running" and running[-2] == "-" and running[-1] == "1"  # not ended yet
    column = lines[0].index("started_at")
    assert all(line[column:].split()[0] == line.split()[4] for line in lines[1:])  # aligned under the header


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    class File:
        def isatty(self):
            return False

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Terminal()) and not use_colour(File())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Terminal())


@pytest.mark.slow
def test_lr_find_writes_no_escape_codes_to_a_file_and_names_the_lr(capsys):
    assert main(["lr-find", "mlp-quadrants", "--steps", "40", "--set", "train.threads=1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "bottoms out" not in out  # that number is a learning rate, not a loss
    if "suggested lr" in out:
        assert "its lowest point came at lr " in out


def test_summary_and_progress_say_which_loss_they_show(capsys):
    assert main(["train", "mlp-quadrants", "--set", "train.max_steps=100", "--set", "train.log_every=25",
                 "--set", "train.eval_every=50", "--set", "train.threads=1"]) == 0
    captured = capsys.readouterr()
    assert "train_loss" in captured.out and "(mean of the last 25 steps)" in captured.out
    step_lines = [line for line in captured.err.splitlines() if line.startswith("step ")]
    assert step_lines and all("step loss " in line for line in step_lines)
    assert main(["runs", "--json"]) == 0
    run_id = __import__("json").loads(capsys.readouterr().out)[0]["run_id"]
    assert main(["show", run_id, "--json"]) == 0
    assert __import__("json").loads(capsys.readouterr().out)["train_loss_steps"] == 25


@pytest.mark.parametrize("text", ["", "   \n\t\n", "# nothing but a comment\n"])
def test_an_empty_preset_file_is_refused(tmp_path, runs_dir, capsys, text):
    path = tmp_path / "empty.toml"
    path.write_text(text)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "empty.toml" in err and "empty" in err and len(err.strip().splitlines()) == 1
    assert not (runs_dir / "workbench.db").exists() or RunStore(runs_dir).list_runs() == []
