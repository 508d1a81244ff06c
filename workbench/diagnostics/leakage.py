"""Validation samples that are also in the training set: the val loss then measures memory, not generalisation.

Checked once at set-up on bounded samples: the inputs of up to TRAIN_ROWS training samples and of the
validation batches every evaluation sees (up to VAL_ROWS) are hashed row by row (the exact bytes of
each input; a tokenizer's dict of tensors counts all of its tensors), and the validation rows whose
hash is among the training ones are counted. When the training sample is only part of the training
set, the fraction found is scaled up by the part sampled (a duplicate outside the sample is not seen).
Reported when at least MIN_DUPLICATES validation rows and at least MIN_FRACTION of them (estimated)
are also training rows: a warning from WARN_FRACTION on (a split made after augmenting or oversampling,
data with many duplicate rows), an info below it: data of short, common samples has a few copies across
any split (7.5% of transformer-classifier's validation lines of code have a copy in training, 1.1% of
seq2seq-reverse's short sequences).
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.diagnostics.base import Detector, RunContext, input_tensors

TRAIN_ROWS = 20_000
VAL_ROWS = 4_096
MIN_DUPLICATES = 2
MIN_FRACTION = 0.01
WARN_FRACTION = 0.1


def row_keys(x: Any) -> list[bytes]:
    """One key per sample: the bytes of its input tensors, row by row."""
    tensors = [t.detach().cpu().contiguous() for t in input_tensors(x)]
    if not tensors:
        return []
    flat = [t.reshape(t.shape[0], -1).numpy() for t in tensors]
    return [b"".join(part[i].tobytes() for part in flat) for i in range(flat[0].shape[0])]


def _keys(batches: list[Any]) -> list[bytes]:
    from workbench.training.batches import split_batch

    keys: list[bytes] = []
    for batch in batches:
        x, _ = split_batch(batch)
        keys += row_keys(x)
    return keys


class ValOverlapsTrainDetector(Detector):
    name = "val_overlaps_train"

    def setup(self, ctx: RunContext) -> None:
        with torch.no_grad():
            train_keys = _keys(ctx.train_batches(TRAIN_ROWS))
            val = _keys(ctx.val_batches(VAL_ROWS))
        if not train_keys or not val:
            return
        train = {hash(key) for key in train_keys}
        duplicates = sum(1 for key in val if hash(key) in train)
        found = duplicates / len(val)
        total = max(ctx.train_size() or 0, len(train_keys))
        estimated = min(1.0, found * total / len(train_keys))  # the sample sees only its part of the copies
        if duplicates < MIN_DUPLICATES or estimated < MIN_FRACTION:
            return
        ctx.report("val_overlaps_train", ctx.step, f"{duplicates:,} of {len(val):,} validation samples ({found:.1%}) "
                   f"are exact copies of training samples (about {estimated:.0%} of the validation set, from "
                   f"{len(train_keys):,} of {total:,} training samples checked): the val loss partly measures memorised "
                   f"samples", {
                       "fraction": estimated, "fraction_found": found, "duplicates": duplicates,
                       "val_checked": len(val), "train_checked": len(train_keys), "train_size": total,
                   }, severity="warning" if estimated >= WARN_FRACTION else "info")
