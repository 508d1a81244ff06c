"""The store's summary buckets: long series read downsampled without scanning them, kept exact as metrics
are written or replaced, and old stores without buckets still read (from the rows themselves)."""

from __future__ import annotations

import time

import pytest

from workbench.store import BUCKET_WIDTHS, StoreWriter
from workbench.tui.compare_data import downsampled, load_curves, summarize


def raw_extremes(store, run_id, name):
    values = [v for _, v in store.metric_series(run_id, name) if v is not None]
    return min(values), max(values)


def test_buckets_follow_writes_and_replaced_values(store):
    run_id = store.create_run("long", {"name": "long"})
    for start in range(0, 100_000, 25_000):  # several writes, as a trainer's commits are
        store.add_metrics(run_id, [(s, "loss", 5.0 + ((s * 7919) % 1000) / 1000) for s in range(start, start + 25_000)])
    fine, coarse = BUCKET_WIDTHS
    assert store.bucket_width(run_id, "loss", 10_000) == coarse
    assert store.bucket_width(run_id, "loss", 1_000) == fine
    assert store.bucket_width(run_id, "loss", fine - 1) is None  # narrower than any level: read the rows
    points = downsampled(store, run_id, "loss", 20)
    assert 2 <= len(points) <= 22
    assert (min(v for _, v in points), max(v for _, v in points)) == raw_extremes(store, run_id, "loss")
    # a resumed run re-logs steps: a replaced minimum must not linger in the buckets, a new spike must show
    lowest = min(store.metric_series(run_id, "loss"), key=lambda row: row[1])[0]
    store.add_metrics(run_id, [(lowest, "loss", 5.5), (70_001, "loss", 50.0)])
    assert store.extreme_metric(run_id, "loss") == pytest.approx(raw_extremes(store, run_id, "loss")[0])
    assert store.extreme_metric(run_id, "loss", lowest=False) == 50.0
    assert max(v for _, v in downsampled(store, run_id, "loss", 20)) == 50.0


def test_the_trainer_writer_keeps_buckets_and_old_stores_still_read(store):
    run_id = store.create_run("writer", {"name": "writer"})
    writer = StoreWriter(store, run_id, interval=0.05)
    for start in range(0, 40_000, 1_000):
        writer.metrics([(s, "loss", 1.0 / (1 + s)) for s in range(start, start + 1_000)])
    writer.close()
    assert store.bucket_width(run_id, "loss", 5_000) == BUCKET_WIDTHS[1]
    bucketed = downsampled(store, run_id, "loss", 20)
    # a store written before the summary existed: no bucket rows, same picture from the rows
    store._write("DELETE FROM metric_buckets WHERE run_id=?", (run_id,))
    assert store.bucket_width(run_id, "loss", 5_000) is None
    legacy = downsampled(store, run_id, "loss", 20)
    assert min(v for _, v in legacy) == min(v for _, v in bucketed) == pytest.approx(1 / 40_000)
    assert max(v for _, v in legacy) == max(v for _, v in bucketed) == 1.0
    assert len(legacy) == len(bucketed)


def test_a_long_run_loads_from_a_few_hundred_rows(store):
    run_id = store.create_run("long", {"name": "long"})
    store.add_metrics(run_id, [(s, "loss", 2.0 / (1 + s / 1000)) for s in range(200_000)]
                      + [(s, "val_loss", 2.0 / (1 + s / 1000)) for s in range(999, 200_000, 1000)])
    store.finish_run(run_id, "completed", 200_000)
    started = time.perf_counter()
    curves = load_curves(store, run_id, 200)
    summary = summarize(store, [run_id], target=0.5)
    elapsed = time.perf_counter() - started
    assert len(curves.series["loss"]) <= 202
    assert summary["runs"][0]["metrics"]["loss"]["best"] == pytest.approx(2.0 / 200.999)
    assert store.bucket_width(run_id, "loss", 1_000) == BUCKET_WIDTHS[0]  # the summary, not the 200k rows
    assert elapsed < 2.0, elapsed  # generous (a loaded machine): benchmarks/compare_load.py times a million steps


def test_overlay_rasterizer_draws_connected_lines_and_envelopes():
    from workbench.tui.widgets.raster import BRAILLE, NONE, braille_cells, column_spans

    # a steep line from (0, 0) to (3, 30): every column covered, the spans joined end to end
    bottom, top = column_spans([0, 3], [0, 30], [0, 30], 6)
    assert bottom[:4] == [0, 5, 15, 25] and top[:4] == [5, 15, 25, 30]
    assert bottom[4:] == [NONE, NONE]  # nothing right of the last point
    # a min/max envelope at one column fills that column from its low to its high
    bottom, top = column_spans([1], [2], [9], 2)
    cells: dict = {}
    touched = braille_cells(bottom, top, 12, cells)
    assert touched == [(0, 0), (0, 1), (0, 2)]
    assert chr(BRAILLE + cells[(0, 1)]) == "⢸"  # the right sub-column, all four dots
    assert chr(BRAILLE + cells[(0, 0)]) == "⠘"  # sub-rows 2-3 from the bottom: the cell's top two dots
    assert chr(BRAILLE + cells[(0, 2)]) == "⢠"  # sub-rows 0-1 of the top cell: its bottom two dots
