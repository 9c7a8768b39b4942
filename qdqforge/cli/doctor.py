"""``qdqforge doctor CONFIG --model MOD:NAME --inputs X.npz [-o page.html] [--json r.json]``.

Runs :func:`qdqforge.analyze` and prints the whole-model fidelity, the most sensitive layers and
the skip advice; ``--skip-config`` writes the config with those layers' ``quant_enable`` false.
``--model`` names a torch module, or a function returning one, as ``package.module:name`` or
``path/to/file.py:name``. ``--inputs`` is an ``.npz`` whose arrays are the model's positional
inputs (``arr_0``, ``arr_1``, ... or in file order). Exit codes: 0 ok, 1 error, 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qdqforge.cli.say import say
from qdqforge.errors import InputDataError
from qdqforge.front.analysis.doctor.skip import DEFAULT_SKIP_DB
from qdqforge.graph.path_roles import check_roles
from qdqforge.safe_text import shown

WORST = 5


def register(subparsers) -> None:
    """Add ``doctor``."""
    parser = subparsers.add_parser("doctor", help="per-layer quantization report, skip advice")
    parser.add_argument("config", help="PTQ JSON config (create_quant_config)")
    parser.add_argument("--model", required=True, help="package.module:name or file.py:name")
    parser.add_argument("--inputs", required=True, help=".npz with the model's inputs")
    parser.add_argument("--record", help="record file (DMQ factors, scale_d/offset_d)")
    parser.add_argument("-o", "--output", help="HTML page to write")
    parser.add_argument("--json", help="also write the report as JSON here")
    parser.add_argument("--skip-config", help="write the config with the advised skips here")
    parser.add_argument("--skip-db", type=float, default=DEFAULT_SKIP_DB, help="skip threshold")
    parser.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    """Analyze, print the summary and write the requested files."""
    source = args.model.rpartition(":")[0]
    check_roles(
        "doctor",
        inputs={"config": args.config, "--inputs": args.inputs, "--record": args.record}
        | ({"--model": source} if source.endswith(".py") else {}),
        outputs={"-o": args.output, "--json": args.json, "--skip-config": args.skip_config},
    )
    try:
        model = load_model(args.model)
    except (ImportError, AttributeError, OSError, TypeError) as e:
        say(f"qdqforge doctor: error: --model {args.model!r}: {shown(e)}", err=True)
        return 2
    from qdqforge.front.analysis.doctor import analyze  # heavy (export, runtime): only when run

    inputs = load_inputs(args.inputs)
    report = analyze(args.config, model, inputs, args.record, skip_db=args.skip_db)
    say(summary(report))
    for path, write in (
        (args.output, report.write_html),
        (args.json, report.write_json),
        (args.skip_config, report.write_skip_config),
    ):
        if path:
            say(f"wrote {shown(write(path))}")
    return 0


def load_model(spec: str) -> nn.Module:
    """The module named by ``spec`` (``pkg.mod:name`` or ``file.py:name``), called if callable."""
    source, _, name = spec.rpartition(":")
    if not source or not name:
        raise ImportError("expected package.module:name or path/to/file.py:name")
    if source.endswith(".py"):
        loaded = importlib.util.spec_from_file_location(Path(source).stem, source)
        if loaded is None or loaded.loader is None:
            raise ImportError(f"cannot load {source}")
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
    else:
        module = importlib.import_module(source)
    found = getattr(module, name)
    model = found() if callable(found) and not isinstance(found, nn.Module) else found
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} gave a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def load_inputs(path: str) -> tuple[torch.Tensor, ...]:
    """The ``.npz`` arrays as tensors: ``arr_0, arr_1, ...`` when present, else file order.

    Raises:
        InputDataError: unreadable or empty file, or an array that is not numeric (strings).
    """
    try:
        with np.load(path) as data:
            names = [f"arr_{i}" for i in range(len(data.files))]
            order = names if set(names) == set(data.files) else list(data.files)
            arrays = [data[k] for k in order]
    except (OSError, ValueError) as e:
        raise InputDataError(f"cannot read inputs {path!r}: {e}") from e
    if not arrays:
        raise InputDataError(f"{path!r} holds no arrays; save the model inputs with np.savez")
    for key, array in zip(order, arrays):
        if array.dtype.kind not in "biuf":
            raise InputDataError(
                f"{path!r}: array {key!r} is {array.dtype} (shape {list(array.shape)}); the "
                "model's inputs must be numeric (bool, int or float) arrays"
            )
    return tuple(torch.from_numpy(a) for a in arrays)


def summary(report) -> str:
    """Whole-model fidelity, the worst layers and the skip advice, as text lines."""
    m, s = report.model, report.with_skips
    lines = [
        f"{len(report.layers)} layers analyzed; all quantized: SQNR {m.sqnr_db:.2f} dB, "
        f"cosine {m.cosine:.6f}, rel-L2 {m.rel_l2:.4g}",
        "most sensitive (SQNR dB with only that layer quantized, cause):",
    ]
    for name in report.ranking[:WORST]:
        layer = report.layer(name)
        lines.append(f"  {shown(name):40s} {layer.quantized.sqnr_db:8.2f}  {shown(layer.cause)}")
    if report.skip:
        lines.append(f"skip ({len(report.skip)}): {', '.join(map(shown, report.skip))}")
        lines.append(
            f"with them float: SQNR {s.sqnr_db:.2f} dB, cosine {s.cosine:.6f}, "
            f"rel-L2 {s.rel_l2:.4g}"
        )
    else:
        lines.append(f"skip: none (no layer {report.skip_db:g} dB below the median)")
    return "\n".join(lines)
