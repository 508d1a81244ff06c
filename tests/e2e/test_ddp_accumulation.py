"""DDP with gradient accumulation all-reduces once per optimizer step (no_sync() on the other micro-steps),
and the gradients it steps with equal those of syncing every micro-step: two CPU processes on gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "support" / "ddp_accumulation.py"
ACCUM, STEPS = 4, 6  # as in the script


def _run(out: Path, port: int, always_sync: bool) -> list[dict]:
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "WB_ALWAYS_SYNC": "1" if always_sync else "0"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                           str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300, env=env, cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_accumulated_gradients_are_reduced_once_per_step_and_equal_the_synced_ones(tmp_path):
    once = _run(tmp_path / "no_sync", 29541, always_sync=False)
    every = _run(tmp_path / "every", 29542, always_sync=True)
    for rank in once + every:
        assert rank["status"] == "completed" and rank["steps"] == STEPS, rank
    # mlp-quadrants' 17k parameters fit one DDP bucket: one all-reduce is one reduction of all gradients.
    assert [r["all_reduces"] for r in every] == [STEPS * ACCUM] * 2  # the reference syncs every micro-step
    assert [r["all_reduces"] for r in once] == [STEPS] * 2  # once per optimizer step
    assert len(once[0]["grad_norms"]) == STEPS
    assert once[0]["grad_norms"] == pytest.approx(every[0]["grad_norms"], rel=1e-5)
    a = torch.load(tmp_path / "no_sync" / "weights.pt")
    b = torch.load(tmp_path / "every" / "weights.pt")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
