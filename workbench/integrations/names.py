"""Other trainers' metric names in the workbench's words, so their runs chart and compare like ours.

The workbench records the train loss as `loss`, the learning rate as `lr` and evaluation metrics as
`val_*` (`val_loss`, `val_accuracy`); diagnostics and the summary read those names. Names without a
workbench meaning are kept as they are (they are stored and charted all the same).
"""

from __future__ import annotations

from typing import Any, Mapping

# Exact renames; the prefixes below cover the rest.
_RENAMES = {
    "learning_rate": "lr",
    "train_loss": "loss",
    "train/loss": "loss",
    "train_loss_step": "loss",  # Lightning's name for a loss logged with on_step=True and on_epoch=True
}
_EVAL_PREFIXES = ("eval_", "eval/", "val/", "validation/", "valid_")
_SHORT = {"acc": "accuracy", "ppl": "perplexity"}


def metric_name(name: str) -> str:
    """eval_loss, val/loss -> val_loss; val_acc -> val_accuracy; learning_rate -> lr; train_loss -> loss."""
    if name in _RENAMES:
        return _RENAMES[name]
    for prefix in _EVAL_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            name = "val_" + name[len(prefix):]
            break
    if name.startswith("val_"):
        rest = name[4:]
        return "val_" + _SHORT.get(rest, rest)
    return name


def numeric(logs: Mapping[str, Any], rename: bool = True) -> dict[str, Any]:
    """The entries a run can record (numbers and tensors), under workbench names when `rename`.

    Non-finite floats are kept: a NaN loss is evidence, not noise."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        if isinstance(value, bool) or not _is_number(value):
            continue
        out[metric_name(key) if rename else key] = value
    return out


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    # a tensor or numpy scalar: one value the run reads back at its next flush
    if not hasattr(value, "item"):
        return False
    size = getattr(value, "numel", None)
    size = size() if callable(size) else getattr(value, "size", None)
    return size == 1
