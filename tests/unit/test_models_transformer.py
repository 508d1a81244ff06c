"""The transformer classifier's two encoders, chosen by `impl`: "torch" and "gpt_block" ("seeds", the
older name stored runs may carry, builds the same model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.data.base import DataInfo
from workbench.models.transformer import build_transformer_classifier

INFO = DataInfo(vocab_size=40, seq_len=10, num_classes=3, pad_id=0)
SIZE = dict(d_model=16, n_head=2, n_layer=2, dim_feedforward=32, dropout=0.0)


def test_gpt_block_is_the_gpt_pre_ln_block_unmasked_and_torch_is_the_encoder():
    torch.manual_seed(0)
    gpt_block = build_transformer_classifier(INFO, **SIZE, impl="gpt_block")
    encoder = build_transformer_classifier(INFO, **SIZE, impl="torch")
    assert isinstance(gpt_block.encoder, nn.ModuleList) and isinstance(gpt_block.norm, nn.LayerNorm)
    assert isinstance(encoder.encoder, nn.TransformerEncoder)
    x = torch.randint(1, 40, (4, 10))
    x[0, 6:] = 0  # padding
    assert gpt_block(x).shape == encoder(x).shape == (4, 3)
    # unmasked: the CLS vector (position 0) sees later tokens; a causal block would leave it unchanged
    cls = build_transformer_classifier(INFO, **SIZE, impl="gpt_block", pool="cls").eval()
    changed = x.clone()
    changed[:, 3] = changed[:, 3] % 39 + 1
    assert not torch.allclose(cls(x), cls(changed))


def test_the_old_spelling_builds_the_same_model():
    torch.manual_seed(0)
    new = build_transformer_classifier(INFO, **SIZE, impl="gpt_block")
    torch.manual_seed(0)
    old = build_transformer_classifier(INFO, **SIZE, impl="seeds")
    assert old.impl == "gpt_block"
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
    assert list(new.state_dict()) == list(old.state_dict())


def test_an_unknown_impl_names_the_choices():
    with pytest.raises(ValueError, match="'torch' .* or 'gpt_block'"):
        build_transformer_classifier(INFO, **SIZE, impl="fast")
