"""``restore_quant_retrain_model``: rebuild a QAT model and load a training checkpoint.

The model is rebuilt from the float model and the config exactly as
``create_quant_retrain_model`` builds it, then ``qat.state_dict()`` from the checkpoint is loaded
(``torch.load(weights_only=True)``: tensors and plain containers only). Every piece of QAT state
is in that state dict (clips, ``initialized`` flags, ulq scales, BN running stats, search-N
sums), so training resumed from it continues exactly as it would have without the interruption
(the optimizer state is the caller's, as in any torch training loop). A DDP ``module.`` prefix is
removed. A checkpoint whose keys or shapes differ from the rebuilt model is a CheckpointError
naming the first layer, in model order, that differs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from qdqforge.errors import CheckpointError
from qdqforge.front.qat.retrain_model import build_retrain_model
from qdqforge.graph.path_roles import check_roles

QAT_PARTS = (".act_quant.", ".weight_quant.", ".search_n.")


def restore_quant_retrain_model(
    config_file: str | os.PathLike,
    model: nn.Module,
    record_file: str | os.PathLike,
    input_data,
    pth_file: str | os.PathLike,
    state_dict_name: str | None = None,
) -> nn.Module:
    """Rebuild the QAT model of ``model`` and load the checkpoint ``pth_file`` into it.

    Args:
        config_file: the QAT config the checkpointed model was built with.
        model: the float model (as given to ``create_quant_retrain_model``); left untouched.
        record_file: record file (created empty when missing, as by create_quant_retrain_model).
        input_data: example input, a tensor or a tuple of tensors.
        pth_file: a ``torch.save`` file holding ``qat.state_dict()``, or a dict holding it under
            ``state_dict_name``.
        state_dict_name: key of the state dict inside the checkpoint dict.

    Returns:
        The QAT module with the checkpoint's state.

    Raises:
        CheckpointError: unreadable file, missing ``state_dict_name``, or a state dict that
            does not match the model built from ``config_file`` (first differing layer named).
        OutputError: ``record_file`` is the config or the checkpoint.
        ModelError, ConfigError, InputDataError, ExportError: as ``create_quant_retrain_model``
            (named ``restore_quant_retrain_model``).
    """
    check_roles(
        "restore_quant_retrain_model",
        inputs={"config_file": config_file, "pth_file": pth_file},
        outputs={"record_file": record_file},
    )
    state = _strip_ddp_prefix(_read_state(pth_file, state_dict_name))  # fail before exporting
    api = "restore_quant_retrain_model"
    qat = build_retrain_model(api, config_file, model, record_file, input_data)
    mismatch = first_mismatch(qat.state_dict(), state)
    if mismatch is not None:
        raise CheckpointError(
            f"{os.fspath(pth_file)} does not match the QAT model built from "
            f"{os.fspath(config_file)}: first mismatching layer {mismatch}"
        )
    qat.load_state_dict(state)
    return qat


def _read_state(pth_file, state_dict_name: str | None) -> Mapping[str, torch.Tensor]:
    try:
        checkpoint = torch.load(pth_file, map_location="cpu", weights_only=True)
    except Exception as e:  # missing file, not a torch file, or objects weights_only refuses
        raise CheckpointError(f"cannot load checkpoint {os.fspath(pth_file)!r}: {e}") from e
    if state_dict_name is not None:
        if not isinstance(checkpoint, Mapping) or state_dict_name not in checkpoint:
            keys = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else []
            raise CheckpointError(
                f"{os.fspath(pth_file)}: no entry {state_dict_name!r} (entries: {keys[:8]})"
            )
        checkpoint = checkpoint[state_dict_name]
    if not isinstance(checkpoint, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        hint = "; give state_dict_name" if state_dict_name is None else ""
        raise CheckpointError(f"{os.fspath(pth_file)}: not a state dict of tensors{hint}")
    return checkpoint


def _strip_ddp_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return dict(state)


def first_mismatch(expected: Mapping, given: Mapping) -> str | None:
    """``"'<layer>' (<what differs>)"`` for the first differing key in model order, or None."""
    for key in [*expected, *(k for k in given if k not in expected)]:
        if key not in given:
            return f"'{layer_of(key)}' (the checkpoint has no {key})"
        if key not in expected:
            return f"'{layer_of(key)}' (the model has no {key}; was the config changed?)"
        if tuple(expected[key].shape) != tuple(given[key].shape):
            shapes = f"{tuple(given[key].shape)} in the checkpoint, {tuple(expected[key].shape)}"
            return f"'{layer_of(key)}' ({key} is {shapes} in the model)"
    return None


def layer_of(key: str) -> str:
    """The layer a state-dict key belongs to (``conv1.act_quant.clip_max`` -> ``conv1``)."""
    for part in QAT_PARTS:
        if part in f".{key}":
            return f".{key}".split(part)[0][1:]
    return key.rpartition(".")[0] or key
