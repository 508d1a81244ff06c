"""`workbench rollback RUN_ID [--lr-factor F | --clip NORM] [--json]`: a diverged run continued from its
last healthy state, in the foreground, with train's exit codes."""

from __future__ import annotations

import json

import pytest

from support import run_cli
from workbench.store import RunStore

DIVERGING = ["--set", "optim.name=sgd", "--set", "train.grad_clip=0", "--set", "train.threads=1"]


def diverge(runs_dir, lr: float) -> str:
    done = run_cli("train", "mlp-quadrants", *DIVERGING, "--set", f"optim.lr={lr:g}", "--json",
                   "--runs-dir", str(runs_dir))
    assert done.returncode == 3, done.stderr[-2000:]
    return json.loads(done.stdout)["run_id"]


@pytest.mark.slow
def test_bad_rollbacks_are_one_line_exit_2_and_change_nothing(runs_dir):
    run_id = diverge(runs_dir, 100)
    store = RunStore(runs_dir)
    config = store.get_run(run_id)["config"]
    for args, why in ((["nope"], "run 'nope': not found"),
                      ([run_id, "--lr-factor", "-1"], "--lr-factor: must be a positive number"),
                      ([run_id, "--clip", "0"], "--clip: must be a positive number"),
                      ([run_id, "--lr-factor", "0.1", "--clip", "1"], "not allowed with argument")):
        done = run_cli("rollback", *args, "--runs-dir", str(runs_dir))
        assert done.returncode == 2, (args, done.stderr)
        assert why in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stdout == ""
    assert store.get_run(run_id)["config"] == config and store.get_run(run_id)["status"] == "diverged"
    done = run_cli("rollback", run_id, "--runs-dir", str(runs_dir / "elsewhere"))
    assert done.returncode == 2 and "no run store" in done.stderr
    store.close()


@pytest.mark.slow
def test_workbench_rollback_rescues_the_runs_that_diverge_at_lr_100_and_3(runs_dir):
    """The last_good weights at the bad step were blown up (weight norm 1e18); the rollback goes back to the
    snapshot from before the explosion (here the start) and the run completes."""
    for lr, flags in ((3, []), (3, ["--clip", "1.0"]), (100, ["--clip", "1.0"])):
        run_id = diverge(runs_dir, lr)
        store = RunStore(runs_dir)
        events = [e["text"] for e in store.events(run_id)]
        assert any(text.startswith("rollback point: step 0,") for text in events), events[-5:]
        store.close()
        done = run_cli("rollback", run_id, *flags, "--json", "--runs-dir", str(runs_dir))
        assert done.returncode == 0, (lr, flags, done.stderr[-3000:])
        summary = json.loads(done.stdout)
        assert summary["run_id"] == run_id and summary["status"] == "completed" and summary["steps"] == 1500
        assert "back to step 0 (diverged at step" in done.stderr
        assert summary["metrics"]["val_accuracy"] > 0.9, summary["metrics"]
    # LR x 0.1 from lr 100 is still too high for SGD here: it diverges again, and says so (exit 3).
    run_id = diverge(runs_dir, 100)
    done = run_cli("rollback", run_id, "--json", "--runs-dir", str(runs_dir))
    assert done.returncode == 3 and json.loads(done.stdout)["status"] == "diverged"
    assert f"run {run_id} diverged" in done.stderr
