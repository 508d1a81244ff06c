"""Generated sequence tasks for the recurrent presets: counting, forecasting, reversing.

- `sequence_task`: variable-length token sequences; the label is the marker token that occurs most
  often. Solving it means carrying counts across the whole sequence, so it separates models that
  remember (LSTM/GRU) from ones that struggle to (a vanilla RNN on long sequences).
- `time_series`: windows of a noisy sum of sines with random frequencies and phases; predict the next
  `horizon` values.
- `reverse_tokens`: source sequence -> its reverse (or a copy), for encoder-decoder models.
Token id 0 is padding everywhere; padded sequences are right-padded.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import TensorDataset

from workbench.data.base import DataBundle, DataInfo
from workbench.data.batched import BatchedDataset, passthrough

PAD, BOS, EOS = 0, 1, 2


def _lengths(n: int, min_len: int, max_len: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(min_len, max_len + 1, (n,), generator=generator)


def sequence_task(
    seed: int,
    num_classes: int = 4,
    vocab_size: int = 16,
    min_len: int = 12,
    max_len: int = 32,
    train_size: int = 8192,
    val_size: int = 2048,
) -> DataBundle:
    """Majority-marker classification: tokens 1..num_classes are markers, the rest are distractors.

    Every sequence has one marker that occurs strictly more often than any other; that marker is
    the label. Lengths vary in [min_len, max_len]; the tail is padding (id 0).
    """
    if num_classes < 2:
        raise ValueError("num_classes must be at least 2")
    if vocab_size < num_classes + 2:
        raise ValueError("vocab_size must exceed num_classes + 1 (markers, distractors and padding)")
    if not 4 <= min_len <= max_len:
        raise ValueError("need 4 <= min_len <= max_len")
    rng = np.random.default_rng(seed)
    distractors = vocab_size - 1 - num_classes

    def make(n: int) -> TensorDataset:
        lengths = rng.integers(min_len, max_len + 1, n)
        markers = np.maximum(2, lengths // 2)
        positions = np.arange(max_len)[None, :]
        # Layout before shuffling: markers first, then distractors, then padding.
        marker_class = rng.integers(0, num_classes, (n, max_len))
        is_marker = positions < markers[:, None]
        counts = np.stack([((marker_class == c) & is_marker).sum(1) for c in range(num_classes)], 1)
        winner = (counts + rng.random(counts.shape)).argmax(1)  # random tie-break
        label = rng.integers(0, num_classes, n)
        # Swap the winner's and the label's identities so the label has the (possibly tied) top count.
        w, lab = winner[:, None], label[:, None]
        marker_class = np.where(marker_class == w, lab, np.where(marker_class == lab, w, marker_class))
        tokens = np.where(is_marker, marker_class + 1, rng.integers(num_classes + 1, vocab_size, (n, max_len)))
        counts = np.stack([((marker_class == c) & is_marker).sum(1) for c in range(num_classes)], 1)
        rivals = np.where(np.arange(num_classes)[None, :] == lab, -1, counts).max(1)
        tied = rivals >= counts[np.arange(n), label]
        tokens[tied, markers[tied]] = label[tied] + 1  # one more label marker in a distractor slot breaks the tie
        # Shuffle each sequence's first `length` positions; padding stays at the end.
        keys = np.where(positions < lengths[:, None], rng.random((n, max_len)), 2.0)
        tokens = np.take_along_axis(tokens, keys.argsort(1), 1)
        tokens[positions >= lengths[:, None]] = PAD
        return TensorDataset(torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(label.astype(np.int64)))

    info = DataInfo(task="classification", num_classes=num_classes, vocab_size=vocab_size, seq_len=max_len,
                    pad_id=PAD, tokens_per_sample=(min_len + max_len) // 2,
                    extra={"variable_length": min_len != max_len})
    return DataBundle(make(train_size), make(val_size), info)


def time_series(
    seed: int,
    window: int = 48,
    horizon: int = 8,
    components: int = 3,
    noise: float = 0.1,
    series: int = 64,
    length: int = 512,
    train_size: int = 8192,
    val_size: int = 2048,
) -> DataBundle:
    """x: (window, 1) past values, y: (horizon,) the next values, from many noisy multi-frequency series.

    Each series is a sum of `components` sines with random periods (8-64 steps), amplitudes and
    phases, plus Gaussian noise; the last quarter of every series is held out for validation.
    `extra["naive_mae"]` is the val MAE of repeating the last observed value: the bar to beat.
    """
    if window < 2 or horizon < 1:
        raise ValueError("window must be >= 2 and horizon >= 1")
    if length < 4 * (window + horizon):
        raise ValueError(f"length must be at least 4 * (window + horizon) = {4 * (window + horizon)}")
    if components < 1 or series < 1:
        raise ValueError("components and series must be at least 1")
    if noise < 0:
        raise ValueError("noise must be >= 0")
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    periods = 8 + 56 * torch.rand(series, components, 1, generator=generator)
    amplitudes = 0.3 + torch.rand(series, components, 1, generator=generator)
    phases = 2 * math.pi * torch.rand(series, components, 1, generator=generator)
    clean = (amplitudes * torch.sin(2 * math.pi * t / periods + phases)).sum(dim=1)
    values = clean + noise * torch.randn(series, length, generator=generator)
    values = values / values.std()
    split = int(length * 0.75)
    span = window + horizon

    def make(part: torch.Tensor, n: int) -> TensorDataset:
        windows = part.unfold(1, span, 1).reshape(-1, span)  # every window of every series
        pick = torch.randint(0, windows.shape[0], (n,), generator=generator)
        chosen = windows[pick]
        return TensorDataset(chosen[:, :window].unsqueeze(-1).contiguous(), chosen[:, window:].contiguous())

    train, val = make(values[:, :split], train_size), make(values[:, split:], val_size)
    naive = (val.tensors[1] - val.tensors[0][:, -1]).abs().mean().item()
    info = DataInfo(task="forecasting", input_shape=(window, 1), seq_len=window, horizon=horizon,
                    tokens_per_sample=window, extra={"naive_mae": naive})
    return DataBundle(train, val, info)


def reverse_tokens(
    seed: int,
    vocab_size: int = 16,
    min_len: int = 4,
    max_len: int = 12,
    mode: str = "reverse",
    train_size: int = 16384,
    val_size: int = 2048,
) -> DataBundle:
    """Source tokens -> their reverse (mode = "reverse") or a copy (mode = "copy").

    Batches are ((src, tgt_in), tgt_out): tgt_in = [BOS] + target, tgt_out = target + [EOS]; padding
    is 0 in src/tgt_in and -100 (ignored by the loss and accuracy) in tgt_out. Ids: 0 pad, 1 BOS, 2 EOS.
    """
    if mode not in ("reverse", "copy"):
        raise ValueError("mode must be 'reverse' or 'copy'")
    if vocab_size < 5:
        raise ValueError("vocab_size must be at least 5 (pad, BOS, EOS and two symbols)")
    if not 1 <= min_len <= max_len:
        raise ValueError("need 1 <= min_len <= max_len")
    generator = torch.Generator().manual_seed(seed)

    def make(n: int) -> TensorDataset:
        lengths = _lengths(n, min_len, max_len, generator)
        symbols = torch.randint(3, vocab_size, (n, max_len), generator=generator)
        positions = torch.arange(max_len).expand(n, max_len)
        valid = positions < lengths.unsqueeze(1)
        src = torch.where(valid, symbols, torch.zeros_like(symbols))
        if mode == "reverse":  # reverse the first `length` tokens of each row
            index = (lengths.unsqueeze(1) - 1 - positions).clamp(min=0)
            target = torch.where(valid, torch.gather(src, 1, index), torch.zeros_like(src))
        else:
            target = src.clone()
        tgt_in = torch.cat([torch.full((n, 1), BOS), target], dim=1)
        tgt_out = torch.cat([target, torch.zeros(n, 1, dtype=torch.long)], dim=1)
        tgt_out[torch.arange(n), lengths] = EOS
        tgt_out[torch.arange(max_len + 1).expand(n, -1) > lengths.unsqueeze(1)] = -100
        return BatchedDataset((src, tgt_in), tgt_out)

    info = DataInfo(task="seq2seq", vocab_size=vocab_size, seq_len=max_len + 1, pad_id=PAD,
                    tokens_per_sample=max_len + 1, collate=passthrough,
                    extra={"bos_id": BOS, "eos_id": EOS, "mode": mode})
    return DataBundle(make(train_size), make(val_size), info)
