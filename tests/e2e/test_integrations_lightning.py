"""Lightning with WorkbenchLogger (+ logger.callback): a small LightningModule on generated data, recorded
with train and val metrics, stopped from another process, and ending with the right status."""

from __future__ import annotations

import threading
import time

import pytest

from support import run_cli, show_run, wait_for
from support.trainers import lightning_fit, quadrant_classifier

pytestmark = pytest.mark.slow


def test_a_lightning_run_is_recorded_with_train_and_val_metrics(tmp_path, store):
    from workbench.integrations.lightning import WorkbenchLogger

    logger = WorkbenchLogger()
    trainer = lightning_fit(tmp_path, logger, quadrant_classifier())
    run = logger.run
    record = store.get_run(run.id)
    assert record["status"] == "completed" and record["preset"] == "QuadrantClassifier"
    assert record["config"]["hparams"] == {"hidden": 32, "lr": 0.05}
    assert record["config"]["lightning"]["max_steps"] == 64
    names = set(store.metric_names(run.id))
    assert {"loss", "val_loss", "val_accuracy", "lr", "grad_norm"} <= names, names
    assert "train_loss" not in names and "val_acc" not in names
    val = dict(store.metric_series(run.id, "val_accuracy"))
    # Lightning logs at the step just taken (0-based), as the watched rows are: 64 steps end at 63
    assert sorted(val) == [31, 63] and val[63] == pytest.approx(float(trainer.callback_metrics["val_acc"]))
    assert val[63] > 0.9 and record["steps"] == 64
    assert logger.version == run.id
    summary = show_run(run.id)
    assert summary["status"] == "completed" and summary["metrics"]["val_accuracy"] == pytest.approx(val[63])
    assert [f for f in summary["findings"] if f["severity"] != "info"] == []



def test_the_watched_gradient_norm_is_this_steps_although_lightning_steps_through_a_closure(tmp_path, store):
    """Lightning runs forward and backward inside optimizer.step(closure): the norm recorded at step k must
    be step k's (read after the closure), not the previous step's."""
    import torch

    from workbench.integrations.lightning import WorkbenchLogger

    model = quadrant_classifier()
    true: dict[int, float] = {}

    def measure(optimizer):  # Lightning's hook after backward, before the update
        norms = [p.grad.norm() for p in model.parameters() if p.grad is not None]
        true[model.trainer.global_step] = float(torch.linalg.vector_norm(torch.stack(norms)))

    model.on_before_optimizer_step = measure
    logger = WorkbenchLogger()
    lightning_fit(tmp_path, logger, model, max_steps=12)
    recorded = dict(store.metric_series(logger.run.id, "grad_norm"))
    assert sorted(recorded) == list(range(12))
    assert [recorded[step] for step in range(12)] == pytest.approx([true[step] for step in range(12)], rel=1e-4)


def test_a_layer_that_makes_nan_ends_the_fit_diverged_with_the_layer_named(tmp_path, store):
    import torch

    from workbench.integrations.lightning import WorkbenchLogger

    model = quadrant_classifier()
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        return output * torch.nan if calls["n"] > 10 else output

    model.net[2].register_forward_hook(poison)
    logger = WorkbenchLogger()
    trainer = lightning_fit(tmp_path, logger, model, max_steps=200, val_check_interval=None,
                            check_val_every_n_epoch=1000)
    assert trainer.global_step < 200
    assert store.get_run(logger.run.id)["status"] == "diverged"
    findings = store.findings(logger.run.id)
    assert any(f["code"].startswith("nonfinite") and f["layer"] == "net.2" for f in findings), findings
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was never applied

def test_stop_from_another_process_stops_the_lightning_fit(tmp_path, store):
    from workbench.integrations.lightning import WorkbenchLogger

    logger = WorkbenchLogger(name="pl-stop")
    sent: dict[str, float] = {}

    def work():
        wait_for(lambda: logger.run is not None and store.metric_names(logger.run.id), what="the first metrics")
        assert run_cli("stop", logger.run.id, timeout=60).returncode == 0
        sent["stop"] = time.monotonic()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    trainer = lightning_fit(tmp_path, logger, quadrant_classifier(), max_steps=1_000_000, max_epochs=-1,
                            val_check_interval=None, check_val_every_n_epoch=1000)
    ended = time.monotonic()
    thread.join(10)
    assert "stop" in sent and ended - sent["stop"] < 5.0
    assert trainer.global_step < 1_000_000
    assert store.get_run(logger.run.id)["status"] == "stopped"


def test_an_exception_in_the_module_ends_the_run_failed_with_its_traceback(tmp_path, store):
    from workbench.integrations.lightning import WorkbenchLogger

    logger = WorkbenchLogger()
    with pytest.raises(RuntimeError, match="boom"):
        lightning_fit(tmp_path, logger, quadrant_classifier(fail_at_step=10))
    record = store.get_run(logger.run.id)
    assert record["status"] == "failed"
    assert "boom in training_step" in (record["reason"] or "") + (record["traceback"] or "")


def test_under_torchrun_two_ranks_make_one_run_and_a_stop_ends_both(tmp_path, store):
    """gloo on CPU, strategy ddp: one run with world_size 2; a stop from another process reaches both ranks
    at the same step (neither hangs in DDP's next all-reduce)."""
    from support import start_torchrun, stop_torchrun, wait_for_recorded_run

    process = start_torchrun("lightning_torchrun.py", str(tmp_path), "1000000")
    try:
        run = wait_for_recorded_run(process, store)
        wait_for(lambda: store.metric_names(run["run_id"]), timeout=60, what="the first metrics")
        ranks = stop_torchrun(process, run["run_id"])
    finally:
        if process.poll() is None:
            process.kill()
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert len({r["step"] for r in ranks}) == 1 and ranks[0]["step"] < 1_000_000
    assert {r["run_id"] for r in ranks} == {run["run_id"]} and len(store.list_runs()) == 1
    record = store.get_run(run["run_id"])
    assert record["status"] == "stopped" and record["world_size"] == 2


def test_set_lr_from_another_process_reaches_the_optimizer_and_keeps_the_schedule(tmp_path, store):
    from workbench.integrations.lightning import WorkbenchLogger

    logger = WorkbenchLogger()
    model = quadrant_classifier()
    seen = {}

    def work():
        wait_for(lambda: logger.run is not None and store.metric_names(logger.run.id), what="the first metrics")
        assert run_cli("control", logger.run.id, "set-lr", "0.0123", timeout=60).returncode == 0
        wait_for(lambda: model.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0123), timeout=30,
                 what="the new learning rate")
        seen["base_lrs"] = list(model.trainer.lr_scheduler_configs[0].scheduler.base_lrs)
        assert run_cli("stop", logger.run.id, timeout=60).returncode == 0

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    lightning_fit(tmp_path, logger, model, max_steps=1_000_000, max_epochs=-1, val_check_interval=None,
                  check_val_every_n_epoch=1000)
    thread.join(10)
    assert seen["base_lrs"] == [pytest.approx(0.0123)]  # StepLR's base moved with it: the schedule keeps its shape
    assert store.last_metric(logger.run.id, "lr") == pytest.approx(0.0123)
    assert store.get_run(logger.run.id)["status"] == "stopped"


def test_without_its_callback_the_logger_still_records_the_metrics(tmp_path, store):
    from workbench.integrations.lightning import WorkbenchLogger

    logger = WorkbenchLogger(name="pl-bare")
    lightning_fit(tmp_path, logger, quadrant_classifier(), callbacks=[])
    record = store.get_run(logger.run.id)
    assert record["status"] == "completed" and record["preset"] == "pl-bare"
    assert record["config"]["hparams"] == {"hidden": 32, "lr": 0.05}
    names = set(store.metric_names(logger.run.id))
    assert {"loss", "val_loss", "val_accuracy"} <= names and "grad_norm" not in names  # nothing watched
