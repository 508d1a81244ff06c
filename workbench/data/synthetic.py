"""Generated tabular data: the quadrant problem and the binary 'sum of features' problem."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from workbench.data.base import DataBundle, DataInfo


def quadrants(seed: int, train_size: int = 8192, val_size: int = 2048, noise: float = 0.0) -> DataBundle:
    """x ~ N(0, I) in 2-D; label = [x0 > 0] + 2 [x1 > 0]. `noise` flips that fraction of labels."""
    generator = torch.Generator().manual_seed(seed)

    def make(n: int) -> TensorDataset:
        x = torch.randn(n, 2, generator=generator)
        y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
        if noise > 0:
            flip = torch.rand(n, generator=generator) < noise
            y[flip] = torch.randint(0, 4, (int(flip.sum()),), generator=generator)
        return TensorDataset(x, y)

    return DataBundle(make(train_size), make(val_size), DataInfo(task="classification", num_classes=4, input_shape=(2,)))


def tabular_binary(
    seed: int, features: int = 20, train_size: int = 8192, val_size: int = 2048, noise: float = 0.0
) -> DataBundle:
    """x ~ N(0, I) with `features` columns; label = sum(x) > 0 as a float target for BCEWithLogits."""
    generator = torch.Generator().manual_seed(seed)

    def make(n: int) -> TensorDataset:
        x = torch.randn(n, features, generator=generator)
        y = (x.sum(dim=1) > 0).float()
        if noise > 0:
            flip = torch.rand(n, generator=generator) < noise
            y[flip] = 1 - y[flip]
        return TensorDataset(x, y)

    return DataBundle(make(train_size), make(val_size), DataInfo(task="binary", num_classes=2, input_shape=(features,)))
