"""Load and save ONNX models, converting to and from :class:`qdqforge.graph.ir.Graph`.

Saving is atomic (temp file in the target folder, then ``os.replace``) and switches to external
data when the serialized model would pass protobuf's 2 GB limit. Every file qdqforge writes goes
through :func:`atomic_write_bytes`: a reader (or a process killed mid-write) sees the old file or
the complete new one, never a partial one. A target that cannot be written (unwritable folder, a
directory in the way, a regular file where a folder should be) is an OutputError naming it.
Outputs the user protected follow one rule (:mod:`qdqforge.graph.output_target`): a read-only
file is refused, a symlink is written through (the file behind it is replaced atomically).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import onnx
import onnx_graphsurgeon as gs

from qdqforge.errors import GraphError
from qdqforge.graph.ir import Graph
from qdqforge.graph.output_target import (
    output_error,
    prepare_target,
    refuse_linked_data,
    refuse_read_only,
)
from qdqforge.graph.serialized import Serialized, graph_serialized

log = logging.getLogger(__name__)

_UMASK = os.umask(0)  # read once at import (setting it is process-wide, so never again)
os.umask(_UMASK)

PROTOBUF_LIMIT = 2**31 - 1
EXTERNAL_THRESHOLD = 2**31 - 2**26  # leave headroom for the graph itself


def from_proto(model: onnx.ModelProto) -> Graph:
    """Wrap a ModelProto as a Graph, keeping node and model metadata in side tables."""
    node_meta = {}
    for node in model.graph.node:
        if node.metadata_props:
            node_meta[node.name] = {p.key: p.value for p in node.metadata_props}
    model_meta = {p.key: p.value for p in model.metadata_props}
    opsets = {o.domain: o.version for o in model.opset_import}
    try:
        graph = gs.import_onnx(model)
    except Exception as e:
        raise GraphError(f"onnx-graphsurgeon could not import the model: {e}") from e
    _take_held_arrays(graph, model)
    return Graph(graph, node_meta, model_meta, opsets, model.ir_version)


def _take_held_arrays(graph: gs.Graph, model: onnx.ModelProto) -> None:
    """Each held placeholder (:mod:`qdqforge.graph.held_arrays`) becomes a constant holding its
    array: shared, not copied (passes replace a constant's array, never write into it), and
    with no data location, as the initializer holding those bytes would import."""
    from qdqforge.graph.held_arrays import held_arrays

    arrays = held_arrays(model)
    if not arrays:
        return
    for name, tensor in graph.tensors().items():
        if name in arrays and isinstance(tensor, gs.Constant):
            tensor.values = arrays[name]
            tensor.data_location = None


def to_proto(graph: Graph) -> onnx.ModelProto:
    """Export a Graph to a ModelProto and write the side tables back as metadata_props."""
    domains = {n.domain or "" for n in graph.gs.nodes}
    opsets = dict(graph.opset_imports)
    for domain in domains - set(opsets):
        opsets[domain] = 1  # custom domains emitted by our passes
    graph.gs.import_domains = [onnx.helper.make_opsetid(d, v) for d, v in sorted(opsets.items())]
    model = gs.export_onnx(graph.gs, do_type_check=False)
    if graph.ir_version:
        model.ir_version = graph.ir_version
    for node in model.graph.node:
        for key, value in sorted(graph.node_meta.get(node.name, {}).items()):
            node.metadata_props.add(key=key, value=str(value))
    for key, value in sorted(graph.metadata_props().items()):
        model.metadata_props.add(key=key, value=str(value))
    return model


def load(source: str | os.PathLike | onnx.ModelProto | Graph, *, mapped: bool = False) -> Graph:
    """Load a Graph from a path, a ModelProto or a Graph (returned as is).

    A file with external data is read tensor by tensor into the graph's arrays
    (:func:`qdqforge.graph.external.load_graph`): no proto holds its weights. ``mapped``: its
    external tensors are read-only views of the data file (:mod:`qdqforge.graph.mapped`), for a
    caller that only reads them.
    """
    if isinstance(source, Graph):
        return source
    if isinstance(source, onnx.ModelProto):
        return from_proto(source)
    from qdqforge.graph import external

    return external.load_graph(source, mapped=mapped)


def load_proto(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file (with its external data) or raise GraphError naming the file."""
    try:
        return onnx.load(os.fspath(path))
    except Exception as e:
        raise GraphError(f"cannot read ONNX file {os.fspath(path)!r}: {e}") from e


def save(model: onnx.ModelProto | Graph, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` atomically; external data ``<name>.data`` above ~2 GB.

    Returns:
        The path written.
    """
    target = Path(path)
    data = graph_serialized(model) if isinstance(model, Graph) else None  # graph.serialized
    if data is None and (isinstance(model, Graph) or needs_external_data(model)):
        return _save_external(model, target)
    atomic_write_bytes(target, model.SerializeToString() if data is None else data)
    return target


def graph_needs_external_data(graph: Graph) -> bool:
    """:func:`needs_external_data` of the graph's proto, without copying its tensors into one."""
    from qdqforge.graph import external

    return external.external_size(graph)[2] > EXTERNAL_THRESHOLD


def needs_external_data(proto: onnx.ModelProto) -> bool:
    """True when ``proto`` serialized would pass protobuf's 2 GB limit (with headroom)."""
    try:
        size = proto.ByteSize()  # one walk over the message (0.8 s on 0.6 GB of weights)
    except Exception:  # protobuf refuses sizes over 2 GB
        return True
    return size > EXTERNAL_THRESHOLD


def _save_external(proto: onnx.ModelProto | Graph, target: Path) -> Path:
    """Save with external data ``<name>.data``: both staged in a temp folder beside the target.

    Two files cannot be replaced at once, so the old graph is removed before the new data file
    is renamed into place and the new graph last: a reader sees the old pair, no graph, or the
    new pair, never a graph with another model's data.
    """
    named, target = target, prepare_data_target(target)
    data_name = target.name + ".data"
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".qdqforge-") as tmp:
            staged = Path(tmp) / target.name
            save_external_to(proto, staged)
            target.unlink(missing_ok=True)
            os.replace(Path(tmp) / data_name, target.parent / data_name)
            os.replace(staged, target)
    except OSError as e:
        raise output_error(target, e) from e
    log.info("saved %s with external data %s", target, data_name)
    return named


def prepare_data_target(target: str | os.PathLike) -> Path:
    """:func:`prepare_target` for a model with external data: its ``.data`` file beside it must
    not be a symlink or read-only either."""
    target = prepare_target(target)
    data = target.parent / (target.name + ".data")
    refuse_linked_data(data)
    refuse_read_only(data)
    return target


def save_external_to(proto: onnx.ModelProto | Graph, staged: Path) -> Path:
    """Write ``proto`` to ``staged`` with its tensors in ``<name>.data`` beside it (fsync'd).

    A Graph is written tensor by tensor from its own arrays (:mod:`qdqforge.graph.external`,
    the same files).

    Returns:
        The data file's path.
    """
    if isinstance(proto, Graph):
        from qdqforge.graph import external

        detached, arrays, _ = external.external_size(proto)
        try:
            return external.save_graph_external(detached, arrays, staged)
        except OSError as e:
            raise output_error(staged, e) from e
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)  # onnx.save_model rewrites tensors in place; keep the caller's
    data = staged.parent / (staged.name + ".data")
    try:
        onnx.save_model(
            copy,
            staged,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
        _fsync(data, staged)
    except OSError as e:
        raise output_error(staged, e) from e
    return data


def _fsync(*paths: Path) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def atomic_write_bytes(target: str | os.PathLike, data: bytes | Serialized) -> None:
    """Write ``data`` to a temp file beside ``target``, fsync, then rename into place.

    The folder is created when missing.

    Raises:
        OutputError: ``target`` is a directory or its folder cannot be created or written.
    """
    target = prepare_target(target)
    tmp = write_temp(target, data)
    try:
        os.replace(tmp, target)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise output_error(target, e) from e
        raise


def write_temp(target: Path, data: bytes | Serialized) -> Path:
    """``data`` (bytes, or a model's parts) in a fsync'd temp file beside ``target`` (a path
    :func:`prepare_target` gave), with the mode ``target`` will get.

    Raises:
        OutputError: the folder cannot be written (the temp file is removed).
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:
        raise output_error(target, e) from e
    try:
        os.chmod(tmp, _new_file_mode(target))  # mkstemp makes 0600; a plain open() would not
        with os.fdopen(fd, "wb") as handle:
            data.write_to(handle) if isinstance(data, Serialized) else handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise output_error(target, e) from e
        raise
    return Path(tmp)


def move_into_place(moves: list[tuple[Path, Path]]) -> None:
    """Rename each staged temp file onto its target (paths :func:`prepare_target` gave), in order.

    Raises:
        OutputError: a rename failed; it names that target (the renames before it stand).
    """
    for tmp, target in moves:
        try:
            os.replace(tmp, target)
        except OSError as e:
            raise output_error(target, e) from e


def _new_file_mode(target: Path) -> int:
    """The mode ``open(target, "w")`` would give: the old file's, else 0666 minus the umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_UMASK


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Text flavour of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(target, text.encode("utf-8"))
