"""Tied weights through export -> reimport: every state_dict name, one tensor, same order; and
embeddings whose padding row must not train (``padding_idx``); frozen parameters stay frozen.

The model ties an embedding to a later module and a head, with the initializer's exported name
not the first in ``state_dict`` order (as T5's ``shared.weight`` / ``encoder.embed_tokens``).
"""

from __future__ import annotations

import copy
import json

import torch
from torch import nn

import qdqforge
from qdqforge.graph import meta


class TiedEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Embedding(11, 6)
        self.encoder = nn.Module()
        self.encoder.embed_tokens = self.shared  # the exporter names the weight after this path
        self.encoder.proj = nn.Linear(6, 6)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.shared.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.encoder.proj(self.encoder.embed_tokens(ids))))


def exported():
    torch.manual_seed(0)
    model = TiedEncoder()
    ids = torch.randint(0, 11, (3, 5))
    return model, ids, qdqforge.export(model, (ids,))


def test_initializer_takes_the_first_name_and_aliases_are_recorded():
    _, _, proto = exported()
    names = [t.name for t in proto.graph.initializer]
    assert "shared.weight" in names and "encoder.embed_tokens.weight" not in names
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props[meta.ALIASES]) == [
        ["encoder.embed_tokens.weight", "shared.weight", "shared.weight"],
        ["head.weight", "shared.weight", "encoder.proj.bias"],
    ]


def test_reimport_keeps_every_name_on_one_tensor():
    model, ids, proto = exported()
    net = qdqforge.reimport(proto)
    assert list(net.state_dict()) == list(model.state_dict())
    net.load_state_dict(model.state_dict(), strict=True)
    assert net.encoder.embed_tokens.weight is net.shared.weight is net.head.weight
    assert len(list(net.parameters())) == len(list(model.parameters())) == 3
    torch.testing.assert_close(net(ids), model(ids), rtol=1e-6, atol=1e-6)


def test_one_sgd_step_keeps_the_tie_and_matches_torch():
    model, ids, proto = exported()
    net = qdqforge.reimport(proto)
    twin = copy.deepcopy(net)
    assert twin.head.weight is twin.shared.weight  # deepcopy keeps the tie
    for module in (model, net):
        opt = torch.optim.SGD(module.parameters(), lr=0.1)
        module(ids).square().mean().backward()
        opt.step()
    assert net.head.weight is net.shared.weight
    torch.testing.assert_close(net.shared.weight, model.shared.weight, rtol=1e-5, atol=1e-6)


class PaddedEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.words = nn.Embedding(9, 4, padding_idx=1)
        self.positions = nn.Embedding(6, 4, padding_idx=0)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.words(ids) + self.positions(positions))


def test_padding_rows_get_no_gradient_as_in_torch():
    torch.manual_seed(0)
    model = PaddedEmbedding()
    ids = torch.tensor([[1, 2, 3, 1], [4, 1, 5, 6]])  # the padding id 1 is read
    positions = torch.tensor([[0, 2, 3, 0], [2, 0, 4, 5]])
    proto = qdqforge.export(model, (ids, positions))
    props = [p for n in proto.graph.node for p in n.metadata_props]
    pads = [p.value for p in props if p.key == meta.PADDING_IDX]
    assert sorted(pads) == ["0", "1"]
    net = qdqforge.reimport(proto)
    net.load_state_dict(model.state_dict())
    for module in (model, net):
        module(ids, positions).sum().backward()
    assert not net.words.weight.grad[1].any() and not net.positions.weight.grad[0].any()
    torch.testing.assert_close(net.words.weight.grad, model.words.weight.grad)
    torch.testing.assert_close(net.positions.weight.grad, model.positions.weight.grad)


def test_frozen_parameters_stay_frozen():
    torch.manual_seed(0)
    model = PaddedEmbedding()
    model.positions.weight.requires_grad_(False)  # a fixed table, as Whisper's positions
    ids, positions = torch.tensor([[2, 3]]), torch.tensor([[0, 1]])
    net = qdqforge.reimport(qdqforge.export(model, (ids, positions)))
    assert not net.positions.weight.requires_grad and net.words.weight.requires_grad
    net(ids, positions).sum().backward()
    assert net.positions.weight.grad is None and net.words.weight.grad is not None
