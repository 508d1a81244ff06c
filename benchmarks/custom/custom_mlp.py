"""The model of the benchmarks' custom preset: a small MLP a user might write in their own file."""

from torch import nn


def build(inputs: int = 2, hidden: int = 128, classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))
