"""Datasets that hand out whole batches, and the bundles text tasks share (LM windows, labelled texts).

`BatchedDataset` implements `__getitems__`, so a DataLoader fetches a batch with one tensor gather
instead of per-sample indexing and collating; it carries dict inputs (Hugging Face models) and
per-batch augmentation (images) that a plain TensorDataset can't. Its collate is `passthrough`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import Dataset, TensorDataset

from workbench.data.base import DataBundle, DataInfo

FORMATS = ("ids", "hf")


def passthrough(batch: Any) -> Any:
    """The collate for BatchedDataset: `__getitems__` already returned a batch."""
    return batch


class BatchedDataset(Dataset):
    """(x, y) pairs kept as tensors; x is a tensor, a tuple or a dict of tensors (all indexed along dim 0).

    `transform(x) -> x` runs once per batch (e.g. augmentation, dtype conversion).
    """

    def __init__(self, x: torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor], y: torch.Tensor,
                 transform: Callable[[Any], Any] | None = None):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def _take(self, index) -> tuple[Any, torch.Tensor]:
        if isinstance(self.x, dict):
            x = {key: value[index] for key, value in self.x.items()}
        elif isinstance(self.x, tuple):
            x = tuple(value[index] for value in self.x)
        else:
            x = self.x[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[index]

    def __getitems__(self, indices: list[int]) -> tuple[Any, torch.Tensor]:
        return self._take(torch.as_tensor(indices, dtype=torch.long))

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        x, y = self._take(torch.tensor([index]))
        if isinstance(x, dict):
            return {key: value[0] for key, value in x.items()}, y[0]
        if isinstance(x, tuple):
            return tuple(value[0] for value in x), y[0]
        return x[0], y[0]


def with_attention_mask(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LM windows have no padding: every position is attended to."""
    return {**x, "attention_mask": torch.ones_like(x["input_ids"])}


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be 'ids' (token tensors, for our models) or 'hf' (dicts with input_ids and "
                         f"attention_mask, for Hugging Face models), got {fmt!r}")


def lm_bundle(train_ids: torch.Tensor, val_ids: torch.Tensor, tokenizer, block_size: int, stride: int,
              fmt: str, seed: int, prompt: str = "\n", extra: dict[str, Any] | None = None) -> DataBundle:
    """Next-token windows over two token streams.

    ids: x = window[:-1], y = window[1:] (our GPT shifts nothing). hf: input_ids = labels = window (the
    Hugging Face model shifts the labels itself). Train windows start every `stride` tokens (1 = every
    offset, like sampling random offsets); val windows don't overlap and come in a fixed shuffled order,
    so the first eval batches are a fair sample of the whole val stream.
    """
    check_format(fmt)
    if block_size < 2:
        raise ValueError("block_size must be at least 2")
    if stride < 1:
        raise ValueError("stride must be at least 1")
    span = block_size + 1 if fmt == "ids" else block_size
    for name, ids in (("train", train_ids), ("val", val_ids)):
        if ids.numel() < span + 1:
            raise ValueError(f"the {name} text has {ids.numel()} tokens, fewer than block_size + 1 = {span + 1}")
    train_windows = train_ids.unfold(0, span, stride)  # a view: no copy of the stream per window
    val_windows = val_ids.unfold(0, span, span)
    order = torch.randperm(val_windows.shape[0], generator=torch.Generator().manual_seed(seed + 7919))
    val_windows = val_windows[order]

    def dataset(windows: torch.Tensor):
        if fmt == "ids":
            return TensorDataset(windows[:, :-1], windows[:, 1:])
        return BatchedDataset({"input_ids": windows}, windows, with_attention_mask)

    info = DataInfo(
        task="language_modeling", vocab_size=tokenizer.vocab_size, seq_len=block_size, pad_id=tokenizer.pad_id,
        tokens_per_sample=block_size, encode=tokenizer.encode, decode=tokenizer.decode,
        collate=passthrough if fmt == "hf" else None,
        extra={"prompt": prompt, "format": fmt, "tokenizer": tokenizer.name, "train_tokens": int(train_ids.numel()),
               "val_tokens": int(val_ids.numel()), **(extra or {})},
    )
    return DataBundle(dataset(train_windows), dataset(val_windows), info)


def classification_bundle(train: tuple[list[str], list[int]], val: tuple[list[str], list[int]],
                          class_names: list[str], tokenizer, seq_len: int, fmt: str,
                          extra: dict[str, Any] | None = None) -> DataBundle:
    """Labelled texts, tokenised to `seq_len` (truncated, padded with the tokenizer's pad id)."""
    check_format(fmt)
    if seq_len < 2:
        raise ValueError("seq_len must be at least 2")
    if not train[0] or not val[0]:
        raise ValueError("no texts to train or validate on")

    def dataset(texts: list[str], labels: list[int]):
        ids, mask = tokenizer.encode_batch(texts, seq_len)
        y = torch.tensor(labels, dtype=torch.long)
        if fmt == "ids":
            return TensorDataset(ids, y)
        return BatchedDataset({"input_ids": ids, "attention_mask": mask}, y)

    info = DataInfo(
        task="classification", num_classes=len(class_names), vocab_size=tokenizer.vocab_size, seq_len=seq_len,
        pad_id=tokenizer.pad_id, tokens_per_sample=seq_len, encode=tokenizer.encode, decode=tokenizer.decode,
        collate=passthrough if fmt == "hf" else None,
        extra={"format": fmt, "tokenizer": tokenizer.name, "classes": list(class_names),
               "train_size": len(train[0]), "val_size": len(val[0]), **(extra or {})},
    )
    return DataBundle(dataset(*train), dataset(*val), info)
