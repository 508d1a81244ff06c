"""SmallCNN, a compact image classifier: Conv-BN-ReLU blocks, two MaxPools, global average pooling, dropout head."""

from __future__ import annotations

from torch import nn

from workbench.data.base import DataInfo


class ConvBlock(nn.Sequential):
    """Conv2d(k, padding=k//2, bias=False) -> BatchNorm2d -> ReLU (the conv bias is redundant before BN)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SmallCNN(nn.Module):
    """ConvBlock(c, w1), ConvBlock(w1, w2), MaxPool, ConvBlock(w2, w3), ConvBlock(w3, w4), MaxPool,
    ConvBlock(w4, w5), AdaptiveAvgPool(1); head Flatten -> Linear(w5, hidden) -> ReLU -> Dropout -> Linear."""

    def __init__(self, in_channels: int, num_classes: int, widths=(32, 64, 128, 128, 256), hidden: int = 128,
                 dropout: float = 0.4, kernel_size: int = 3):
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.features = nn.Sequential(
            ConvBlock(in_channels, w1, kernel_size),
            ConvBlock(w1, w2, kernel_size),
            nn.MaxPool2d(2),
            ConvBlock(w2, w3, kernel_size),
            ConvBlock(w3, w4, kernel_size),
            nn.MaxPool2d(2),
            ConvBlock(w4, w5, kernel_size),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(w5, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


def build_small_cnn(
    info: DataInfo,
    widths: list[int] | None = None,
    width_multiplier: float = 1.0,
    hidden: int = 128,
    dropout: float = 0.4,
    kernel_size: int = 3,
    num_classes: int | None = None,
) -> SmallCNN:
    """widths: the five ConvBlock widths (default 32, 64, 128, 128, 256), scaled by width_multiplier.
    num_classes fixes the head's width (default: the data's classes)."""
    from workbench.models.mlp import _head_width

    if not info.input_shape or len(info.input_shape) != 3:
        raise ValueError("the cnn needs image data (input_shape = (channels, height, width))")
    base = list(widths) if widths is not None else [32, 64, 128, 128, 256]
    if len(base) != 5 or any(int(w) < 1 for w in base):
        raise ValueError("widths must be five positive integers")
    if width_multiplier <= 0:
        raise ValueError("width_multiplier must be positive")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError("kernel_size must be an odd positive integer")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")
    scaled = tuple(max(1, round(int(w) * width_multiplier)) for w in base)
    classes = _head_width(num_classes) if num_classes is not None else info.num_classes or 2
    return SmallCNN(info.input_shape[0], classes, scaled, hidden, dropout, kernel_size)
