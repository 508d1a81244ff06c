"""A Transformer encoder classifier: token + learned position embeddings, encoder blocks without a causal
mask (padding masked out), a pooled representation (mean over real tokens, or a learned CLS vector),
then a Linear to the classes.

impl = "torch" uses nn.TransformerEncoder (post-LN or pre-LN via norm_first); impl = "gpt_block" uses
workbench.models.gpt's pre-LN Block with the causal mask off (always pre-LN, with a final LayerNorm).
"seeds" is accepted for "gpt_block": stored runs recorded it under that older name.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.data.base import DataInfo
from workbench.models.gpt import Block

IMPLS = ("torch", "gpt_block")
IMPL_ALIASES = {"seeds": "gpt_block"}  # the older spelling, still in stored runs' configs


class TransformerClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, max_len: int, d_model: int, n_head: int, n_layer: int,
                 dim_feedforward: int, dropout: float, pool: str, impl: str, norm_first: bool, pad_id: int):
        super().__init__()
        self.pad_id, self.pool, self.impl = pad_id, pool, impl
        extra = 1 if pool == "cls" else 0
        self.tok_emb = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos_emb = nn.Embedding(max_len + extra, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pool == "cls" else None
        self.drop = nn.Dropout(dropout)
        if impl == "torch":
            layer = nn.TransformerEncoderLayer(d_model, n_head, dim_feedforward, dropout, activation="gelu",
                                               batch_first=True, norm_first=norm_first)
            self.encoder = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        else:
            self.encoder = nn.ModuleList([Block(d_model, n_head, dropout, causal=False) for _ in range(n_layer)])
        self.norm = nn.LayerNorm(d_model) if impl == "gpt_block" or norm_first else nn.Identity()
        self.head = nn.Linear(d_model, num_classes)
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.tok_emb.weight[pad_id].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = x != self.pad_id  # True = a real token
        h = self.tok_emb(x)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)
            keep = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)
        keep = keep | ~keep.any(dim=1, keepdim=True)  # an all-padding row attends to everything, not nothing
        h = self.drop(h + self.pos_emb(torch.arange(h.shape[1], device=x.device)))
        if self.impl == "torch":
            h = self.encoder(h, src_key_padding_mask=~keep)
        else:
            for block in self.encoder:
                h = block(h, key_padding_mask=keep)
        h = self.norm(h)
        if self.cls is not None:
            pooled = h[:, 0]
        else:
            weights = keep.unsqueeze(-1).to(h.dtype)
            pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


def build_transformer_classifier(info: DataInfo, d_model: int = 128, n_head: int = 4, n_layer: int = 2,
                                 dim_feedforward: int = 256, dropout: float = 0.1, pool: str = "mean",
                                 impl: str = "torch", norm_first: bool = True) -> TransformerClassifier:
    if not info.vocab_size or not info.seq_len:
        raise ValueError("the transformer classifier needs token data (vocab_size and seq_len)")
    if info.extra.get("format") == "hf":
        raise ValueError("this model takes token tensors: set data.args.format = \"ids\"")
    if pool not in ("mean", "cls"):
        raise ValueError("pool must be 'mean' or 'cls'")
    impl = IMPL_ALIASES.get(impl, impl)
    if impl not in IMPLS:
        raise ValueError("impl must be 'torch' (nn.TransformerEncoder) or 'gpt_block' (the GPT's pre-LN block, "
                         "unmasked)")
    if d_model % n_head:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_head ({n_head})")
    if n_layer < 1 or dim_feedforward < 1:
        raise ValueError("n_layer and dim_feedforward must be positive")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")
    return TransformerClassifier(info.vocab_size, info.num_classes or 2, info.seq_len, d_model, n_head, n_layer,
                                 dim_feedforward, dropout, pool, impl, norm_first,
                                 info.pad_id if info.pad_id is not None else 0)
