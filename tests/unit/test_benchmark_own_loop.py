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
    assert report["null"] is False and report["blocks_per_pair"] == overhead.BLOCKS_PER_PAIR
    for key in ("bare_steps_per_s_median", "ours_steps_per_s_median", "ratio_median", "cpu_ratio_median"):
        assert math.isfinite(report[key]) and report[key] > 0, key


def test_the_null_method_times_two_bare_copies_and_the_bare_copy_clips_with_torchs_own_function(tmp_path):
    import torch.nn.utils

    from workbench.training import clip_watch

    preset = overhead.load_preset("mlp-quadrants", ["train.max_steps=100", "train.eval_every=0"])
    watched, bare = overhead.OwnLoop(preset, tmp_path), overhead.OwnLoop(preset)
    try:
        assert torch.nn.utils.clip_grad_norm_ is clip_watch._clip_grad_norm_  # the watched copy's wrapper is on
        calls = []
        original = clip_watch._original
        clip_watch._original = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
        try:
            bare.train(3)
            assert calls == []  # the bare copy never went through the wrapper
            watched.train(3, settle=True)
            assert len(calls) == 3
        finally:
            clip_watch._original = original
        assert watched.run.step == 3
    finally:
        watched.close()
    threads = torch.get_num_threads()
    try:
        report = overhead.measure_own_loop_blocks("mlp-quadrants", pairs=2, steps=10, overrides=[], null=True)
    finally:
        torch.set_num_threads(threads)
    assert report["null"] is True and len(report["ratios"]) == 2


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
