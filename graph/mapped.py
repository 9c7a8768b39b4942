"""External data read through a read-only memory map: weights on demand, their pages let go.

A model over 2 GB keeps its tensors in ``<name>.data``. Read with ``np.fromfile`` (what
:func:`qdqforge.graph.external.load_graph` does by default) every weight is a private copy, so
a job that only reads them (``save_model``: check the record, write three models) holds all of
them at once. Mapped, a tensor is an array over the file's pages: the kernel reads a page when
it is first touched, and :func:`release` hands the pages of an array back once its reader is
done with it (``madvise(MADV_DONTNEED)``: on a read-only mapping a page is clean, so dropping
it loses nothing and the next read faults it in again from the page cache or the file). Memory
then follows what is being read (one row block, one tensor being written), not the model.

The arrays are read-only (``writeable`` False): torch wraps them only by copy
(:func:`qdqforge.runtime.store.shared_tensor`), and a pass that writes into one fails loudly
instead of changing the file. A tensor whose offset is not a multiple of its item size is read
into its own array (numpy would give a misaligned view).

:class:`SpillFile` does the same for arrays a job computes: each is written to an unlinked temp
file and comes back as a read-only view of its own map, released the same way.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # numpy < 2
    from numpy import byte_bounds

_PAGE = mmap.PAGESIZE
_ours: weakref.WeakSet = weakref.WeakSet()  # mappings made here: release touches no other


def map_file(path: Path) -> mmap.mmap | None:
    """A read-only map of ``path``; None for an empty file (mmap refuses length 0)."""
    with open(path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            return None
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    _ours.add(mapping)
    return mapping


def mapped_array(mapping: mmap.mmap, dtype: np.dtype, count: int, offset: int) -> np.ndarray | None:
    """The ``count`` items of ``dtype`` at ``offset`` as a read-only view of ``mapping``; None
    when they are misaligned or lie (partly) beyond its end (the caller reads them instead)."""
    if offset % dtype.itemsize or offset + count * dtype.itemsize > len(mapping):
        return None
    return np.frombuffer(mapping, dtype, count, offset)


def release(array: np.ndarray) -> None:
    """Drop the pages under ``array`` if it views a mapping of :func:`map_file` (else nothing).

    Whole pages from the one holding its first byte to the one holding its last: a neighbour
    sharing an edge page faults it in again when read."""
    mapping = _mapping_of(array)
    if mapping is None or not hasattr(mapping, "madvise") or array.size == 0:
        return
    start = np.frombuffer(mapping, np.uint8, 1).ctypes.data
    low, high = byte_bounds(array)
    first = (low - start) // _PAGE * _PAGE
    end = min(-(-(high - start) // _PAGE) * _PAGE, len(mapping))
    if 0 <= first < end:
        mapping.madvise(mmap.MADV_DONTNEED, first, end - first)


def is_mapped(array) -> bool:
    """Whether ``array`` views a mapping of :func:`map_file` (what :func:`release` drops)."""
    return isinstance(array, np.ndarray) and _mapping_of(array) is not None


def release_all() -> None:
    """Drop the pages of every live mapping made here (the next read faults them in again):
    after a run that read through views this module cannot name, e.g. a torch module's
    parameters over mapped arrays."""
    for mapping in list(_ours):
        if hasattr(mapping, "madvise") and not mapping.closed:
            mapping.madvise(mmap.MADV_DONTNEED)


def _mapping_of(array) -> mmap.mmap | None:
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) and base in _ours else None


class SpillFile:
    """Computed arrays moved out of memory into an unlinked temp file, read back mapped.

    A save that computes a new float weight for every layer (the QAT save's fake-quantized
    weights) would hold all of them before the first model is written. :meth:`put` writes one
    array to the file and returns its values as a read-only view of a map of that region alone:
    the pages belong to the page cache, the writer that reads them hands them back
    (:func:`release`), and the map goes when the last view does. The file is made in ``folder``
    (the outputs' folder: a disk the outputs fit on, where the system's temp folder may be memory)
    and unlinked at once, so nothing is left behind, even by a killed process; where the system
    refuses that (Windows, the file open), :meth:`close` removes it.
    """

    def __init__(self, folder: Path) -> None:
        handle, name = tempfile.mkstemp(dir=folder, prefix=".qdqforge-spill-")
        self._file, self._name = os.fdopen(handle, "w+b"), Path(name)
        try:
            self._name.unlink()
            self._name = None
        except OSError:
            pass

    def put(self, array: np.ndarray) -> np.ndarray:
        """``array``'s values, shape and dtype as a read-only view of the file (an empty array is
        returned as it is: mmap refuses length 0)."""
        if array.size == 0:
            return array
        array = np.ascontiguousarray(array)
        granularity = mmap.ALLOCATIONGRANULARITY  # where a map may start
        start = -(-self._file.seek(0, os.SEEK_END) // granularity) * granularity
        self._file.seek(start)
        self._file.write(array.reshape(-1).view(np.uint8).data)
        self._file.flush()
        mapping = mmap.mmap(self._file.fileno(), array.nbytes, access=mmap.ACCESS_READ,
                            offset=start)  # fmt: skip
        _ours.add(mapping)
        return np.frombuffer(mapping, array.dtype, array.size).reshape(array.shape)

    def close(self) -> None:
        """Close the file (the views keep their maps); remove it where it was not unlinked."""
        self._file.close()
        if self._name is not None:
            with contextlib.suppress(OSError):
                self._name.unlink()

    def __enter__(self) -> SpillFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
