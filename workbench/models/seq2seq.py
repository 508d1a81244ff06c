"""A Seq2Seq of LSTMs: a shared Embedding, an LSTM encoder, an LSTM decoder started from the encoder's
(h, c), and a Linear to the vocabulary.

Training uses teacher forcing (the decoder reads the true previous token; `teacher_forcing` < 1 feeds
its own greedy prediction back at that rate). Evaluation decodes free-running, greedy, from BOS only,
so val accuracy is what the model gets right on its own: the gap to train accuracy is the exposure
bias teacher forcing leaves.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from workbench.data.base import DataInfo


class Seq2Seq(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, num_layers: int, dropout: float, pad_id: int,
                 teacher_forcing: float = 1.0, free_running_eval: bool = True):
        super().__init__()
        self.pad_id = pad_id
        self.teacher_forcing = teacher_forcing
        self.free_running_eval = free_running_eval
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        between = dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(embed_dim, hidden, num_layers=num_layers, batch_first=True, dropout=between)
        self.decoder = nn.LSTM(embed_dim, hidden, num_layers=num_layers, batch_first=True, dropout=between)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def encode(self, src: torch.Tensor):
        lengths = (src != self.pad_id).sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.dropout(self.embedding(src)), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, state = self.encoder(packed)
        return state

    def forward(self, x):
        src, tgt_in = x
        state = self.encode(src)
        free_running = not self.training and self.free_running_eval
        if self.training and self.teacher_forcing >= 1.0:
            output, _ = self.decoder(self.dropout(self.embedding(tgt_in)), state)
            return self.out(self.dropout(output))
        # Step by step: feed the true token (teacher forcing) or the model's own greedy guess.
        steps = []
        token = tgt_in[:, :1]
        for t in range(tgt_in.shape[1]):
            output, state = self.decoder(self.dropout(self.embedding(token)), state)
            logits = self.out(self.dropout(output))
            steps.append(logits)
            if t + 1 < tgt_in.shape[1]:
                guess = logits.argmax(dim=-1)
                if free_running:
                    token = guess
                else:
                    use_truth = torch.rand(tgt_in.shape[0], 1, device=tgt_in.device) < self.teacher_forcing
                    token = torch.where(use_truth, tgt_in[:, t + 1 : t + 2], guess)
        return torch.cat(steps, dim=1)

    @torch.no_grad()
    def translate(self, src: torch.Tensor, bos_id: int, eos_id: int, max_len: int) -> list[list[int]]:
        """Greedy decoding until EOS (for inspecting what the model does with a sequence)."""
        state = self.encode(src)
        token = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        results = [[] for _ in range(src.shape[0])]
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            output, state = self.decoder(self.embedding(token), state)
            token = self.out(output).argmax(dim=-1)
            for i, value in enumerate(token[:, 0].tolist()):
                if not done[i] and value != eos_id:
                    results[i].append(value)
            done |= token[:, 0] == eos_id
            if bool(done.all()):
                break
        return results


def build_seq2seq(info: DataInfo, embed_dim: int = 64, hidden: int = 128, num_layers: int = 1, dropout: float = 0.0,
                  teacher_forcing: float = 1.0, free_running_eval: bool = True) -> Seq2Seq:
    if not info.vocab_size:
        raise ValueError("seq2seq needs token data (vocab_size)")
    if embed_dim < 1 or hidden < 1 or num_layers < 1:
        raise ValueError("embed_dim, hidden and num_layers must be positive")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")
    if not 0 <= teacher_forcing <= 1:
        raise ValueError("teacher_forcing must be in [0, 1]")
    return Seq2Seq(info.vocab_size, embed_dim, hidden, num_layers, dropout,
                   info.pad_id if info.pad_id is not None else 0, teacher_forcing, free_running_eval)
