"""The run store: lifecycle, interrupted detection, downsampled reads, control channel, writer batching."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from support import wait_for
from workbench.errors import StoreError
from workbench.store import RunStore, StoreWriter


def test_lifecycle_and_listing(store):
    run_id = store.create_run("mlp-quadrants", {"a": 1})
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["config"] == {"a": 1} and run["pid"] == os.getpid()
    store.add_metrics(run_id, [(0, "loss", 1.5), (1, "loss", 1.2)])
    store.finish_run(run_id, "completed", 2, stats={"steps_per_second": 10.0})
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["steps"] == 2 and run["stats"]["steps_per_second"] == 10.0
    second = store.create_run("other", {})
    assert [r["run_id"] for r in store.list_runs()][:2] == [second, run_id]  # newest first
    assert store.metric_series(run_id, "loss") == [(0, 1.5), (1, 1.2)]


def test_run_of_a_dead_process_shows_as_interrupted(store):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    run_id = store.create_run("p", {})
    store._write("UPDATE runs SET pid=? WHERE run_id=?", (child.pid, run_id))
    assert store.get_run(run_id)["status"] == "running"
    child.kill()
    child.wait()
    assert store.get_run(run_id)["status"] == "interrupted"
    assert store.list_runs()[0]["status"] == "interrupted"


def test_downsampled_series_keeps_spikes(store):
    run_id = store.create_run("p", {})
    rows = [(step, "loss", 1.0) for step in range(10_000)]
    rows[7_777] = (7_777, "loss", 50.0)
    store.add_metrics(run_id, rows)
    points = store.metric_series(run_id, "loss", max_points=200)
    assert len(points) <= 202
    assert max(v for _, v in points) == 50.0


def test_findings_upsert_by_code_and_layer(store):
    run_id = store.create_run("p", {})
    finding = {"code": "dead_units", "severity": "warning", "step": 5, "layer": "body.1", "message": "m",
               "remedy": "r", "evidence": {"fraction": 0.9}}
    store.upsert_finding(run_id, finding)
    store.upsert_finding(run_id, {**finding, "step": 5, "last_step": 50, "count": 2})
    rows = store.findings(run_id)
    assert len(rows) == 1 and rows[0]["count"] == 2 and rows[0]["last_step"] == 50 and rows[0]["step"] == 5


def test_control_channel_consumes_once(store):
    run_id = store.create_run("p", {})
    store.send_command(run_id, "set_lr", "0.01")
    store.send_command(run_id, "stop")
    assert store.take_commands(run_id) == [("set_lr", "0.01"), ("stop", None)]
    assert store.take_commands(run_id) == []


def test_writer_batches_and_flushes(store):
    run_id = store.create_run("p", {})
    writer = StoreWriter(store, run_id, interval=0.05)
    writer.metrics([(i, "loss", float(i)) for i in range(100)])
    writer.event(3, "log", "hello")
    writer.heartbeat(100)
    # flushed by the writer's thread on its own (before close), in one batch
    wait_for(lambda: len(store.metric_series(run_id, "loss")) == 100 and store.get_run(run_id)["steps"] == 100,
             timeout=30, interval=0.02, what="the writer's flush")
    writer.close()
    assert store.events(run_id)[0]["text"] == "hello"


def test_unusable_runs_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        RunStore(blocker / "runs")
    with pytest.raises(StoreError, match="does not exist"):
        RunStore(tmp_path / "missing", create=False)


def test_run_dir_cannot_escape(store):
    with pytest.raises(StoreError):
        store.run_dir("../../etc")


def test_metric_rows_read_back_exactly_by_either_insert(store):
    """Rows go in as one JSON document (sqlite then works without the GIL); a batch JSON cannot carry
    (NaN, inf, a numpy number) goes row by row: both read back the same values, names and steps."""
    import math

    import numpy as np

    run_id = store.create_run("p", {})
    odd_name = 'grad_norm/layers.0 "q"\\x'
    finite = [(step, name, value) for step in range(500) for name, value in
              (("loss", 1 / (step + 1)), (odd_name, 0.1 + step * 1e-17), ("lr", 3e-3 if step % 2 else 3))]
    store.add_metrics(run_id, finite)
    store.add_metrics(run_id, [(500, "loss", math.nan), (501, "loss", math.inf), (502, "loss", np.float32(0.25))])
    loss = store.metric_series(run_id, "loss")
    assert loss[:500] == [(step, 1 / (step + 1)) for step in range(500)]
    assert loss[501:] == [(501, math.inf), (502, 0.25)] and loss[500][0] == 500
    assert store.metric_series(run_id, odd_name) == [(step, 0.1 + step * 1e-17) for step in range(500)]
    lr = store.metric_series(run_id, "lr")
    assert lr[1] == (1, 3e-3) and lr[2] == (2, 3.0) and isinstance(lr[2][1], float)
    store.add_metrics(run_id, [(0, "loss", 9.0)])  # a re-logged step replaces the old value
    assert store.metric_series(run_id, "loss")[0] == (0, 9.0)
