"""qdqforge.export on a CNN, a transformer block and a weight-sharing model, with both exporters.

Each (model, exporter) pair is exported once (module-scoped fixture): dynamo costs seconds.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qdqforge
from qdqforge.front.export.module_names import layer_nodes, module_map, shared_modules
from qdqforge.graph import meta


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(x + self.bn2(self.conv2(x)))
        return self.fc(self.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


class HandAttention(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        return x + self.proj(attn @ v)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(6, dim)
        self.encoder = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.1, batch_first=True)
        self.attn = HandAttention(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        return self.head(self.attn(self.encoder(self.embed(x))).mean(dim=1))


class SharedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.shared = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.shared(F.relu(self.shared(self.stem(x))))


def build(name: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model, shape = {
        "cnn": (SmallCNN, (2, 3, 8, 8)),
        "transformer": (TransformerBlock, (2, 5, 6)),
        "shared": (SharedConv, (2, 3, 6, 6)),
    }[name]
    model = model()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial stats: BN must not be re-estimated
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model, (torch.randn(*shape),)


def decorate(model: nn.Module) -> None:
    """Give the user's model state an export could disturb: mixed modes, hooks, a frozen weight."""
    model.train()
    first = next(model.children())
    first.eval()
    first.register_forward_hook(lambda module, args, out: None)
    first.register_forward_pre_hook(lambda module, args: None)
    first.register_full_backward_hook(lambda module, grad_in, grad_out: None)
    next(model.parameters()).requires_grad_(False)


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "ids": {k: id(v) for k, v in model.named_parameters()},
        "requires_grad": {k: v.requires_grad for k, v in model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": {
            k: (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks))
            for k, m in model.named_modules()
        },
    }


CASES = [(m, e) for m in ("cnn", "transformer", "shared") for e in ("dynamo", "torchscript")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{m}-{e}" for m, e in CASES])
def exported(request):
    name, exporter = request.param
    model, args = build(name)
    decorate(model)
    before, rng = snapshot(model), torch.get_rng_state()
    proto = qdqforge.export(model, args, exporter=exporter)
    return {
        "name": name,
        "exporter": exporter,
        "model": model,
        "args": args,
        "proto": proto,
        "before": before,
        "rng": rng,
        "rng_after": torch.get_rng_state(),
    }


def run_ort(proto: onnx.ModelProto, *args: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: a.numpy() for n, a in zip(names, args)})


def eval_output(model: nn.Module, *args: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return copy.deepcopy(model).eval()(*args).numpy()


def test_user_model_untouched(exported):
    model, before = exported["model"], exported["before"]
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), f"{key} changed"
    for field in ("ids", "requires_grad", "training", "hooks"):
        assert after[field] == before[field], f"{field} changed"
    assert torch.equal(exported["rng"], exported["rng_after"]), "global RNG stream consumed"


def test_onnxruntime_equals_eval_torch(exported):
    got = run_ort(exported["proto"], *exported["args"])[0]
    np.testing.assert_allclose(got, eval_output(exported["model"], *exported["args"]), atol=1e-5)


def test_dynamic_batch_runs_other_batch_sizes(exported):
    proto, (x,) = exported["proto"], exported["args"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    bigger = torch.cat([x, x, x[:1]])
    got = run_ort(proto, bigger)[0]
    assert got.shape[0] == 5
    np.testing.assert_allclose(got, eval_output(exported["model"], bigger), atol=1e-5)


def test_initializers_keep_torch_names_and_values(exported):
    model, proto = exported["model"], exported["proto"]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    state = model.state_dict()
    for name, _ in model.named_parameters():
        assert name in inits, f"parameter {name} missing or renamed"
    for name, value in inits.items():
        if name in state:
            np.testing.assert_array_equal(value, state[name].numpy(), err_msg=name)
    parameters = meta.load_names(_model_meta(proto)[meta.PARAMETERS])
    assert parameters == sorted(n for n, _ in model.named_parameters())
    buffers = meta.load_names(_model_meta(proto)[meta.BUFFERS])
    assert buffers == sorted(n for n in state if n.endswith(("running_mean", "running_var")))


def test_batchnorm_kept_in_inference_mode(exported):
    bns = [n for n in exported["proto"].graph.node if n.op_type == "BatchNormalization"]
    expected = sum(isinstance(m, nn.BatchNorm2d) for m in exported["model"].modules())
    assert len(bns) == expected
    for node in bns:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs.get("training_mode", 0) == 0
        assert len(node.output) == 1


def test_dropout_kept_with_inference_semantics(exported):
    model, proto = exported["model"], exported["proto"]
    dropouts = {n: m.p for n, m in model.named_modules() if isinstance(m, nn.Dropout)}
    nodes = [n for n in proto.graph.node if n.op_type == "Dropout"]
    owners = module_map(proto)
    by_module = {owners[n.name]: n for n in nodes if owners.get(n.name) in dropouts}
    assert by_module.keys() == dropouts.keys()
    constants = _constant_values(proto)
    for name, node in by_module.items():
        assert len(node.input) == 2, f"{node.name} still has training_mode"
        assert float(constants[node.input[1]]) == pytest.approx(dropouts[name])


def test_weighted_nodes_carry_their_module(exported):
    model, proto = exported["model"], exported["proto"]
    modules = dict(model.named_modules())
    owners, producers = module_map(proto), _producers(proto)
    checked = 0
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        weight = _weight_name(node, producers)
        meta_props = {p.key: p.value for p in node.metadata_props}
        expected = weight.rpartition(".")[0] if weight else None
        if expected is not None and expected.endswith("self_attn.out_proj"):
            expected = expected.removesuffix(".out_proj")  # MHA calls out_proj functionally
        if expected is not None:
            assert owners[node.name] == expected, node.name
            assert meta_props[meta.MODULE_TYPE] == type(modules[expected]).__name__
            checked += 1
        else:  # activation @ activation: owned by the module whose forward does it
            assert owners[node.name] in modules, node.name
    assert checked >= 3


def test_node_and_io_names(exported):
    proto = exported["proto"]
    names = [n.name for n in proto.graph.node]
    assert all(names) and len(set(names)) == len(names)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    onnx.checker.check_model(proto)


def test_layer_nodes_lists_each_modules_nodes(exported):
    proto = exported["proto"]
    groups = layer_nodes(proto)
    assert sum(len(v) for v in groups.values()) == len(module_map(proto))
    convs = [n for n in groups.get("shared", []) if n in _op_names(proto, "Conv")]
    if exported["name"] == "shared":
        assert len(convs) == 2
        assert shared_modules(proto) == ["shared"]
    else:
        assert shared_modules(proto) == []


def _model_meta(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def _op_names(proto: onnx.ModelProto, op: str) -> set[str]:
    return {n.name for n in proto.graph.node if n.op_type == op}


def _producers(proto: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in proto.graph.node for out in node.output}


def _weight_name(node: onnx.NodeProto, producers: dict) -> str | None:
    """The parameter read as input 1, directly or through Transpose (Linear on 3-D input)."""
    name = node.input[1]
    producer = producers.get(name)
    if producer is not None and producer.op_type == "Transpose":
        name = producer.input[0]
    return name if name.endswith(".weight") else None


def _constant_values(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":  # value (tensor) or value_float / value_int ...
            value = onnx.helper.get_attribute_value(node.attribute[0])
            if isinstance(value, onnx.TensorProto):
                value = onnx.numpy_helper.to_array(value)
            values[node.output[0]] = np.asarray(value)
    return values


def test_dynamo_export_is_deterministic():
    model, args = build("shared")
    first = qdqforge.export(model, args, exporter="dynamo")
    second = qdqforge.export(model, args, exporter="dynamo")
    assert first.SerializeToString() == second.SerializeToString()
