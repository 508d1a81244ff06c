"""Batches of in-memory tensors: index_select on CPU gives the rows plain indexing gives, in the same order,
and tensors kept on another device are still indexed (index_select wants its index there)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from workbench.training.batches import BatchOrder, BatchSource


def test_cpu_batches_are_the_rows_the_order_names_epoch_after_epoch():
    x, y = torch.randn(50, 3, 2), torch.arange(50)
    source = BatchSource(TensorDataset(x, y), batch_size=8, seed=4)
    order = BatchOrder(50, 8, 4)
    assert source._select
    for _ in range(20):  # past two epochs (6 batches each, the ragged tail dropped)
        indices = order.next_indices()
        bx, by = source.next()
        assert torch.equal(bx, x[indices]) and torch.equal(by, y[indices]) and bx.is_contiguous()
    assert source.state_dict() == order.state_dict()


def test_tensors_on_another_device_are_indexed_as_before():
    x = torch.randn(20, 4, device="meta")  # (no GPU here: the meta device stands for one)
    source = BatchSource(TensorDataset(x, torch.zeros(20, device="meta")), batch_size=5, seed=0)
    assert not source._select
    bx, by = source.next()
    assert bx.shape == (5, 4) and by.shape == (5,) and bx.device.type == "meta"
