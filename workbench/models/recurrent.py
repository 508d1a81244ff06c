"""Recurrent models: an explicit-loop VanillaRNN, stacked (bi)LSTM/GRU classifiers, an LSTM forecaster.

Token inputs (data with a vocab_size) go through an Embedding; padding (pad_id) is skipped: the
VanillaRNN freezes its state on padded steps, the LSTM/GRU pack the batch with pack_padded_sequence.
Real-valued inputs (B, T, features) go straight in.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from workbench.data.base import DataInfo


def _input_layer(info: DataInfo, embed_dim: int) -> tuple[nn.Module | None, int]:
    """An Embedding for token data, or nothing for real-valued sequences; returns (layer, input width)."""
    if info.vocab_size:
        if embed_dim < 1:
            raise ValueError("embed_dim must be positive")
        return nn.Embedding(info.vocab_size, embed_dim, padding_idx=info.pad_id), embed_dim
    if info.input_shape and len(info.input_shape) == 2:
        return None, int(info.input_shape[-1])
    raise ValueError("recurrent models need token data (vocab_size) or sequences shaped (time, features)")


def _check(hidden: int, num_layers: int = 1, dropout: float = 0.0) -> None:
    if hidden < 1 or num_layers < 1:
        raise ValueError("hidden and num_layers must be positive")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")


class VanillaRNN(nn.Module):
    """h_t = tanh(W_x x_t + W_h h_{t-1}), written as an explicit loop; classify from the last hidden state."""

    def __init__(self, embedding: nn.Module | None, input_size: int, hidden: int, num_classes: int,
                 pad_id: int | None, nonlinearity: str = "tanh"):
        super().__init__()
        self.embedding = embedding
        self.pad_id = pad_id
        self.hidden = hidden
        self.wx = nn.Linear(input_size, hidden)
        self.wh = nn.Linear(hidden, hidden, bias=False)
        self.act = torch.tanh if nonlinearity == "tanh" else torch.relu
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        mask = (x != self.pad_id) if self.embedding is not None and self.pad_id is not None else None
        inputs = self.embedding(x) if self.embedding is not None else x
        projected = self.wx(inputs)  # W_x x_t for every t at once; only the recurrence is sequential
        h = projected.new_zeros(projected.shape[0], self.hidden)
        for t in range(projected.shape[1]):
            h_new = self.act(projected[:, t] + self.wh(h))
            h = h_new if mask is None else torch.where(mask[:, t, None], h_new, h)
        return self.head(h)


class RecurrentClassifier(nn.Module):
    """Embedding -> stacked LSTM/GRU (dropout between layers, optionally bidirectional) -> final hidden
    state (both directions) -> Linear(d, d/2) -> ReLU -> Dropout -> Linear(d/2, classes)."""

    def __init__(self, cell: str, embedding: nn.Module | None, input_size: int, hidden: int, num_layers: int,
                 num_classes: int, dropout: float, bidirectional: bool, pad_id: int | None, pack: bool = True):
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.embedding = embedding
        self.pad_id = pad_id
        self.pack = pack and embedding is not None and pad_id is not None
        self.directions = 2 if bidirectional else 1
        self.rnn = rnn(input_size, hidden, num_layers=num_layers, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
        d = hidden * self.directions
        self.head = nn.Sequential(nn.Linear(d, d // 2), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d // 2, num_classes))

    def forward(self, x):
        inputs = self.embedding(x) if self.embedding is not None else x
        if self.pack:
            lengths = (x != self.pad_id).sum(dim=1).clamp(min=1).cpu()
            inputs = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(inputs)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        # the last layer's final state in each direction (with packing: at each sequence's true end)
        final = torch.cat(list(h_n[-self.directions:]), dim=-1)
        return self.head(final)


class LSTMForecaster(nn.Module):
    """LSTM over the past window -> the last layer's final hidden state -> Linear(hidden, horizon)."""

    def __init__(self, input_size: int, hidden: int, num_layers: int, horizon: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.head(h_n[-1])


def build_vanilla_rnn(info: DataInfo, hidden: int = 128, embed_dim: int = 32, nonlinearity: str = "tanh") -> VanillaRNN:
    _check(hidden)
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError("nonlinearity must be 'tanh' or 'relu'")
    embedding, width = _input_layer(info, embed_dim)
    return VanillaRNN(embedding, width, hidden, info.num_classes or 2, info.pad_id, nonlinearity)


def _classifier(cell: str, info: DataInfo, hidden: int, num_layers: int, dropout: float, bidirectional: bool,
                embed_dim: int, pack: bool) -> RecurrentClassifier:
    _check(hidden, num_layers, dropout)
    embedding, width = _input_layer(info, embed_dim)
    return RecurrentClassifier(cell, embedding, width, hidden, num_layers, info.num_classes or 2, dropout,
                               bidirectional, info.pad_id, pack)


def build_lstm_classifier(info: DataInfo, hidden: int = 128, num_layers: int = 2, dropout: float = 0.2,
                          bidirectional: bool = True, embed_dim: int = 32, pack: bool = True) -> RecurrentClassifier:
    return _classifier("lstm", info, hidden, num_layers, dropout, bidirectional, embed_dim, pack)


def build_gru_classifier(info: DataInfo, hidden: int = 128, num_layers: int = 2, dropout: float = 0.2,
                         bidirectional: bool = True, embed_dim: int = 32, pack: bool = True) -> RecurrentClassifier:
    return _classifier("gru", info, hidden, num_layers, dropout, bidirectional, embed_dim, pack)


def build_lstm_forecaster(info: DataInfo, hidden: int = 64, num_layers: int = 2, dropout: float = 0.1) -> LSTMForecaster:
    _check(hidden, num_layers, dropout)
    if not info.input_shape or len(info.input_shape) != 2:
        raise ValueError("the forecaster needs sequences shaped (window, features)")
    return LSTMForecaster(int(info.input_shape[-1]), hidden, num_layers, info.horizon or 1, dropout)
