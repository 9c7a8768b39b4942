"""Message classes built at runtime from the ``.proto`` files shipped in this package.

The ``.proto`` files are the source of truth. They are compiled by our own small converter
(:mod:`~qdqforge.front.proto.compiler` + :mod:`~qdqforge.front.proto.resolve`) into
``FileDescriptorProto``s, added to a private ``DescriptorPool`` and turned into classes with
``message_factory.GetMessageClass``. No ``protoc``, no generated ``_pb2`` files, no
``grpcio-tools`` (which pins protobuf versions): only the ``protobuf`` runtime is needed.
"""

from __future__ import annotations

import functools
from importlib import resources

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from qdqforge.front.proto.compiler import compile_proto
from qdqforge.front.proto.resolve import resolve_types

# Dependency order: a file comes after the files it imports.
SCHEMA_FILES = (
    "basic_info.proto",
    "calibration_config_pytorch.proto",
    "retrain_config_pytorch.proto",
    "scale_offset_record_pytorch.proto",
)
PACKAGE = "AMCTPytorchProto"


def schema_text(filename: str) -> str:
    """Text of one shipped ``.proto`` file."""
    return resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")


def compile_schemas() -> list[descriptor_pb2.FileDescriptorProto]:
    """Compile and resolve every shipped ``.proto`` file."""
    files = [compile_proto(schema_text(name), name) for name in SCHEMA_FILES]
    resolve_types(files)
    return files


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for proto in compile_schemas():
        pool.AddSerializedFile(proto.SerializeToString())
    return pool


@functools.cache
def message_class(name: str) -> type:
    """The generated class for message ``name`` (``"AMCTConfig"`` or a fully qualified name).

    Raises:
        KeyError: no such message in the shipped schemas.
    """
    full = name if "." in name else f"{PACKAGE}.{name}"
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full))
