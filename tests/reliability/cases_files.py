"""Catalogue rows: output paths qdqforge cannot or must not write.

An unwritable folder, a directory in the way, a read-only file the user protected, a symlink
that loops. Every writer goes through ``graph.io``'s atomic writers (one rule,
``graph.output_target``), so each row is one public call; the error names the path.
"""

from __future__ import annotations

import qdqforge
from qdqforge.errors import OutputError
from tests.reliability.catalogue import Case
from tests.reliability.world import unwritable_dir


def _save_to(where):
    return lambda w: qdqforge.save_model(str(w.onnx), str(w.record), str(where(w)))


def _quantize_to(onnx=None, record=None):
    def call(w):
        onnx_file = onnx(w) if onnx else w.tmp / "m.onnx"
        record_file = record(w) if record else w.tmp / "r.txt"
        return qdqforge.quantize_model(
            str(w.config), str(onnx_file), str(record_file), w.model, w.x
        )

    return call


def _dir(w, name="a_dir"):
    folder = w.tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _under_file(w):
    return w.write("a_file", "x") / "net"


def _read_only(w, name="ro.txt", text="keep"):
    path = w.write(name, text)
    path.chmod(0o444)
    return path


def _loop(w, name="loop.json"):
    link = w.tmp / name
    link.symlink_to(link)
    return link


def _config_copy(w, source=None, name="config.json"):
    return w.write(name, (source or w.config).read_text())


def _linked(w, target, name="link.txt"):
    link = w.tmp / name
    link.symlink_to(target)
    return link


def _files(name, call, match, what) -> Case:
    return Case(f"files:{name}", what, call, OutputError, match)


CASES = [
    _files(
        "save-unwritable",
        _save_to(lambda w: unwritable_dir(w.tmp) / "net"),
        "net_fake_quant_model.onnx",
        "save_path in a folder that cannot be written",
    ),
    _files(
        "save-path-is-directory",
        _save_to(lambda w: _dir(w)),
        "save_path",
        "save_path naming an existing directory (no trailing '/')",
    ),
    _files(
        "save-target-is-directory",
        _save_to(lambda w: _dir(w, "out/net_fake_quant_model.onnx").parent / "net"),
        "is a directory",
        "a directory where the fake-quant ONNX goes",
    ),
    _files(
        "save-under-a-file",
        _save_to(_under_file),
        "a_file",
        "save_path inside a path that is a regular file",
    ),
    _files(
        "modified-onnx-unwritable",
        _quantize_to(onnx=lambda w: unwritable_dir(w.tmp) / "m.onnx"),
        "m.onnx",
        "modified ONNX in an unwritable folder",
    ),
    _files(
        "modified-onnx-is-directory",
        _quantize_to(onnx=_dir),
        "a_dir",
        "modified ONNX path naming a directory",
    ),
    _files(
        "record-unwritable",
        _quantize_to(record=lambda w: unwritable_dir(w.tmp) / "r.txt"),
        "r.txt",
        "record file in an unwritable folder",
    ),
    _files(
        "config-unwritable",
        lambda w: qdqforge.create_quant_config(str(unwritable_dir(w.tmp) / "c.json"), w.model, w.x),
        "c.json",
        "config file in an unwritable folder",
    ),
    _files(
        "config-is-directory",
        lambda w: qdqforge.create_quant_config(str(_dir(w)), w.model, w.x),
        "a_dir",
        "config path naming a directory",
    ),
    _files(
        "dmq-record-under-a-file",
        lambda w: qdqforge.quantize_preprocess(
            str(w.dmq_config), str(_under_file(w)), w.model, w.x
        ),
        "a_file",
        "DMQ record inside a path that is a regular file",
    ),
    _files(
        "record-read-only",
        _quantize_to(record=lambda w: _read_only(w, "r.txt", w.record.read_text())),
        "r.txt': the file is read-only (mode 444)",
        "record file the user made read-only",
    ),
    _files(
        "config-read-only",
        lambda w: qdqforge.create_quant_config(str(_read_only(w, "c.json")), w.model, w.x),
        "c.json': the file is read-only",
        "config path naming a read-only file",
    ),
    _files(
        "fake-quant-read-only",
        lambda w: qdqforge.save_model(
            str(w.onnx),
            str(w.record),
            str(_read_only(w, "out/net_fake_quant_model.onnx").parent / "net"),
        ),
        "net_fake_quant_model.onnx': the file is read-only",
        "a read-only fake-quant model where save_model writes",
    ),
    _files(
        "config-symlink-loop",
        lambda w: qdqforge.create_quant_config(str(_loop(w)), w.model, w.x),
        "loop.json': a symlink loop",
        "config path that is a symlink to itself",
    ),
    _files(
        "onnx-is-config",
        lambda w: (
            (cfg := _config_copy(w))
            and qdqforge.quantize_model(str(cfg), str(cfg), str(w.tmp / "r.txt"), w.model, w.x)
        ),
        "quantize_model: modified_onnx_file is the same file as config_file",
        "modified_onnx_file naming the PTQ config",
    ),
    _files(
        "qat-record-is-config",
        lambda w: (
            (cfg := _config_copy(w, w.qat_config))
            and qdqforge.create_quant_retrain_model(str(cfg), w.model, str(cfg), w.x)
        ),
        "create_quant_retrain_model: record_file is the same file as config_file",
        "QAT record_file naming the QAT config",
    ),
    _files(
        "record-links-to-config",
        lambda w: (
            (cfg := _config_copy(w))
            and qdqforge.quantize_model(
                str(cfg), str(w.tmp / "m.onnx"), str(_linked(w, cfg)), w.model, w.x
            )
        ),
        "record_file is the same file as config_file",
        "record_file a symlink to the config",
    ),
    _files(
        "config-is-cfg",
        lambda w: qdqforge.create_quant_config(
            str(cfg := w.write("def.cfg", "batch_num: 1\n")),
            w.model,
            w.x,
            config_defination=str(cfg),
        ),
        "config_file is the same file as config_defination",
        "create_quant_config writing over its own .cfg",
    ),
]
