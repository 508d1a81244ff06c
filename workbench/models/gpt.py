"""A GPT (nanoGPT-style, decoder-only): token + learned position embeddings, pre-LN blocks with causal
multi-head attention (one fused qkv projection, F.scaled_dot_product_attention), a final LayerNorm and a
head tied to the token embedding; normal(0, 0.02) init; sampling with temperature and top-k.

`SelfAttention` and `Block` take `causal=False` too: the transformer classifier reuses them unmasked.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workbench.data.base import DataInfo


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused qkv Linear; optional causal mask and key padding mask."""

    def __init__(self, d_model: int, n_head: int, dropout: float, causal: bool, bias: bool = True):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"n_embd ({d_model}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        mask = None
        if key_padding_mask is not None:  # True = a real token that may be attended to
            mask = key_padding_mask[:, None, None, :]
            if self.causal:  # SDPA ignores is_causal when given a mask: fold the causal mask in
                mask = mask & torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal and mask is None)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.proj(y))


class Block(nn.Module):
    """Pre-LN: x + attn(ln1(x)); x + ff(ln2(x)); ff = Linear(d, 4d) -> GELU -> Linear -> Dropout."""

    def __init__(self, d_model: int, n_head: int, dropout: float, causal: bool = True, bias: bool = True):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = SelfAttention(d_model, n_head, dropout, causal, bias)
        self.ln2 = nn.LayerNorm(d_model, bias=bias)
        self.ff = nn.Sequential(nn.Linear(d_model, 4 * d_model, bias=bias), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(4 * d_model, d_model, bias=bias), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), key_padding_mask)
        return x + self.ff(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, dropout: float,
                 bias: bool = True):
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(n_embd, n_head, dropout, True, bias) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections: their variance adds up over 2 * n_layer paths
        for name, param in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("ff.3.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size {self.block_size}")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> torch.Tensor:
        """Append max_new_tokens sampled tokens (the context is cropped to the last block_size)."""
        for _ in range(max_new_tokens):
            context = idx[:, -self.block_size :]
            logits = self(context)[:, -1, :] / max(temperature, 1e-5)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1, None]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            idx = torch.cat([idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)], dim=1)
        return idx


def build_gpt(info: DataInfo, n_layer: int = 4, n_head: int = 4, n_embd: int = 128, dropout: float = 0.1,
              block_size: int | None = None, bias: bool = True) -> GPT:
    """block_size defaults to the data's sequence length."""
    if not info.vocab_size:
        raise ValueError("gpt needs token data (vocab_size)")
    if info.extra.get("format") == "hf":
        raise ValueError('this model takes token tensors: set data.args.format = "ids"')
    if n_layer < 1 or n_head < 1 or n_embd < 1:
        raise ValueError("n_layer, n_head and n_embd must be positive")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")
    block = block_size or info.seq_len
    if not block:
        raise ValueError("block_size is needed (the data does not say its sequence length)")
    if info.seq_len and block < info.seq_len:
        raise ValueError(f"block_size ({block}) is shorter than the data's sequences ({info.seq_len})")
    return GPT(info.vocab_size, block, n_layer, n_head, n_embd, dropout, bias)
