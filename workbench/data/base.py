"""What a data builder returns: the train/val datasets and the facts a model and the trainer need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class DataInfo:
    """Facts about a dataset that size the model and pick eval metrics.

    Model builders read what they need (e.g. `num_classes`, `input_shape`, `vocab_size`) so presets
    don't repeat numbers the data already knows.
    """

    task: str = "classification"
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    vocab_size: int | None = None
    seq_len: int | None = None
    horizon: int | None = None
    pad_id: int | None = None
    # Tokens per sample, for tokens/s on language tasks.
    tokens_per_sample: int | None = None
    # Turn token ids back into text (LM samples) and text into ids (prompts).
    decode: Callable[[list[int]], str] | None = None
    encode: Callable[[str], list[int]] | None = None
    # A DataLoader collate_fn for datasets whose items don't stack by default.
    collate: Callable[[list[Any]], Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Two inputs (a batch of two validation samples) the model is tried on before anything trains.
    sample: Any = None


@dataclass
class DataBundle:
    train: Any
    val: Any
    info: DataInfo
