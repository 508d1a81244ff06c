"""The integrations' shared pieces: metric names in the workbench's words, and lazy framework imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.integrations.names import metric_name, numeric


@pytest.mark.parametrize("name,expected", [
    ("loss", "loss"), ("train_loss", "loss"), ("train/loss", "loss"), ("train_loss_step", "loss"),
    ("learning_rate", "lr"), ("grad_norm", "grad_norm"), ("epoch", "epoch"),
    ("eval_loss", "val_loss"), ("eval_accuracy", "val_accuracy"), ("eval_runtime", "val_runtime"),
    ("val_acc", "val_accuracy"), ("val/loss", "val_loss"), ("validation/acc", "val_accuracy"),
    ("val_loss", "val_loss"), ("eval_ppl", "val_perplexity"), ("train_loss_epoch", "train_loss_epoch"),
    ("my_metric", "my_metric"), ("eval_", "eval_"),
])
def test_metric_names_map_to_the_workbench_words(name, expected):
    assert metric_name(name) == expected


def test_numeric_keeps_numbers_and_one_value_tensors_and_drops_the_rest():
    import torch

    logs = {"loss": 0.5, "eval_loss": torch.tensor(0.25), "epoch": 1, "flag": True, "note": "x",
            "vector": torch.ones(3), "nan": float("nan"), "none": None}
    out = numeric(logs)
    assert set(out) == {"loss", "val_loss", "epoch", "nan"}
    assert out["val_loss"] is logs["eval_loss"]  # tensors go to the run as they are, read back at its flush
    assert set(numeric({"train_loss": 1.0}, rename=False)) == {"train_loss"}


def test_importing_the_integrations_package_imports_no_framework():
    code = ("import sys, workbench.integrations, workbench.integrations.names; "
            "print(sorted(m for m in ('transformers', 'pytorch_lightning', 'lightning', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
