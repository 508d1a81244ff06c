"""The own-loop benchmark's two methods run and report paired figures (kept from rotting: `make bench`
does not run them)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import overhead

pytestmark = pytest.mark.slow


def test_blocks_alternate_a_bare_and_a_watched_copy_of_the_loop_in_one_process():
    threads = torch.get_num_threads()
    try:
        report = overhead.measure_own_loop_blocks("mlp-quadrants", pairs=3, steps=20, overrides=[])
    finally:
        torch.set_num_threads(threads)
    assert report["method"] == "blocks" and report["pairs"] == 3 and len(report["ratios"]) == 3
    for key in ("bare_steps_per_s_median", "ours_steps_per_s_median", "ratio_median", "cpu_ratio_median"):
        assert math.isfinite(report[key]) and report[key] > 0, key


def test_the_loops_continue_where_the_last_block_ended(tmp_path):
    preset = overhead.load_preset("mlp-quadrants", ["train.max_steps=100", "train.eval_every=0"])
    loop = overhead.OwnLoop(preset, tmp_path)
    try:
        loop.train(7)
        loop.train(5)
        assert loop.step == 12 and loop.run.step == 12  # the watched run saw every optimizer step
    finally:
        loop.close()
    assert loop.run.status == "completed"
