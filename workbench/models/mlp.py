"""An MLP: Linear -> [Norm] -> activation -> Dropout, repeated, then a Linear head."""

from __future__ import annotations

import math

from torch import nn

from workbench.data.base import DataInfo

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU}
NORMS = {"none": None, "layernorm": nn.LayerNorm, "batchnorm": nn.BatchNorm1d}


class MLP(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: list[int],
        activation: str = "relu",
        dropout: float = 0.1,
        norm: str = "none",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if NORMS[norm] is not None:
                layers.append(NORMS[norm](size))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def forward(self, x):
        return self.head(self.body(x.flatten(1)))


def _head_width(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise ValueError("num_classes must be an integer from 1 to 1,000,000")
    return value


def build_mlp(
    info: DataInfo,
    hidden: list[int] | int = 128,
    depth: int = 2,
    activation: str = "relu",
    dropout: float = 0.1,
    norm: str = "none",
    num_classes: int | None = None,
) -> MLP:
    """`hidden` is a list of widths, or one width repeated `depth` times. `num_classes` fixes the head's
    width (default: what the data needs; a head that doesn't fit the data is refused before training)."""
    if isinstance(hidden, bool) or not isinstance(hidden, (int, list, tuple)):
        raise ValueError("hidden must be a width or a list of widths")
    if isinstance(hidden, int) and not (isinstance(depth, int) and 1 <= depth <= 100):
        raise ValueError("depth must be an integer from 1 to 100")
    widths = [hidden] * depth if isinstance(hidden, int) else list(hidden)
    if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 65536 for w in widths):
        raise ValueError("hidden widths must be integers from 1 to 65536")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError("dropout must be in [0, 1)")
    in_features = math.prod(info.input_shape or (1,))
    # Binary tasks use one logit (BCEWithLogits); regression one output per target.
    if info.task == "binary":
        out = 1
    elif info.task in ("regression", "forecasting"):
        out = info.horizon or 1
    else:
        out = info.num_classes or 2
    if num_classes is not None:
        out = _head_width(num_classes)
    return MLP(in_features, out, widths, activation, dropout, norm)
