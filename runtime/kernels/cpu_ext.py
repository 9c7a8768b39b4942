"""Compiled CPU kernels, built on first use: QAT fake quantization (``csrc/fake_quant_cpu.cpp``)
and the calibration observers' passes (``csrc/observe_cpu.cpp``, :mod:`.observe_ops`).

The first CPU QAT forward in a process calls :func:`cpu_ops`, which builds the C++ source with
``torch.utils.cpp_extension`` (g++ and ninja; ~20 s, once per machine, torch version, CPU
capability and source: the ``.so`` is cached under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``) and loads it; later processes only load the cached library. The
ops are ``torch.ops.qdqforge_cpu.{ulq_act, arq_retrain, ulq_weight}``: each one C++ autograd
Function, so a quantizer costs one dispatcher call per direction and one pass over its tensor;
the observers' ops are ``torch.ops.qdqforge_obs.*`` (``observe`` below).

Build flags: ``-O3 -ffp-contract=off`` (no FMA: the Python paths' rounding), ``-fno-trapping-math``
(lets comparisons vectorize; values are unchanged), ``-mavx2`` where torch reports an AVX2 or
AVX512 CPU (the capability is part of the library's name, so a cache shared between machines
never loads an AVX2 build on a CPU without it), and ``-fopenmp``, compiling and linking: the
kernels' ``at::parallel_for`` is an OpenMP pragma in ATen's headers, which without the flag ran
every kernel on one thread (until 2026-12-05: the IFMR histogram pass of a 16 M-value tensor
took 28 ms on one or two threads, 15 ms on two with it). The library then needs
``libgomp.so.1``, which torch's Linux wheels load themselves (one OpenMP runtime in the process,
the thread count torch's); a compiler that cannot build with OpenMP builds without it. The name
also hashes the sources' folder: two checkouts (or virtual environments) of qdqforge on one
machine build in their own folders instead of rebuilding each other's library and waiting on
each other's build lock.

torch guards a build with a ``lock`` file in the build folder and waits for it without a
timeout; a build killed mid-way leaves that file behind and every later process would wait
forever. A lock older than :data:`STALE_LOCK_SECONDS` (a build takes ~20 s, minutes on a
loaded machine) is removed with a warning before loading.

Without a compiler, or when the build fails, one warning is logged and :func:`cpu_ops` returns None:
the Python paths of :mod:`.ulq` run instead, with the same forward values. ``QDQFORGE_FUSED=0``
turns the compiled kernels off (:mod:`.ulq_dispatch`). :func:`main` builds them ahead of time
(``make install`` calls it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import torch

logger = logging.getLogger(__name__)

SOURCES = tuple(
    Path(__file__).with_name("csrc") / name for name in ("fake_quant_cpu.cpp", "observe_cpu.cpp")
)
BASE_FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math"]
OPENMP_FLAGS = ["-fopenmp"]  # compile and link: at::parallel_for's pragmas, torch's libgomp
ENV_SWITCH = "QDQFORGE_FUSED"  # "0": every caller of these kernels takes its torch path
AVX2_CAPABILITIES = {"AVX2", "AVX512"}
STALE_LOCK_SECONDS = 15 * 60

_lock = threading.Lock()
_state: dict[str, SimpleNamespace | None] = {}


def build_flags(openmp: bool = True) -> tuple[str, list[str]]:
    """``(library name, g++ flags)`` for this CPU and source (module docstring)."""
    capability = torch.backends.cpu.get_cpu_capability()
    flags = BASE_FLAGS + (["-mavx2"] if capability in AVX2_CAPABILITIES else [])
    flags += OPENMP_FLAGS if openmp else []
    code = b"".join(source.read_bytes() for source in SOURCES)
    where = str(SOURCES[0].parent.resolve()).encode()
    digest = hashlib.sha256(code + " ".join(flags).encode() + where).hexdigest()[:12]
    return f"qdqforge_fq_cpu_{capability.lower()}_{digest}", flags


def _build() -> SimpleNamespace:
    try:
        return _load(openmp=True)
    except Exception as e:  # a compiler without OpenMP: the kernels on one thread
        logger.info("building the compiled CPU kernels with OpenMP failed (%s); without", e)
        return _load(openmp=False)


def _load(openmp: bool) -> SimpleNamespace:
    from torch.utils import cpp_extension

    name, flags = build_flags(openmp)
    start = time.perf_counter()
    logger.info("loading qdqforge's compiled CPU kernels (built once, ~20 s): %s", name)
    sources = [str(source) for source in SOURCES]
    remove_stale_lock(Path(cpp_extension._get_build_directory(name, verbose=False)))
    cpp_extension.load(
        name=name,
        sources=sources,
        extra_cflags=flags,
        extra_ldflags=OPENMP_FLAGS if openmp else [],
        is_python_module=False,
    )
    logger.info("compiled CPU kernels ready in %.1f s", time.perf_counter() - start)
    ops = torch.ops.qdqforge_cpu
    return SimpleNamespace(
        ulq_act=ops.ulq_act,
        arq_retrain=ops.arq_retrain,
        ulq_weight=ops.ulq_weight,
        observe=torch.ops.qdqforge_obs,
    )


def remove_stale_lock(build_dir: Path, max_age: float = STALE_LOCK_SECONDS) -> bool:
    """Remove ``build_dir/lock`` when it is older than ``max_age`` seconds (module docstring).

    Returns:
        True when a stale lock was removed.
    """
    lock = build_dir / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < max_age:
        return False
    logger.warning(
        "removing a stale build lock %s (%.0f min old: a build of the compiled kernels was "
        "interrupted); building again",
        lock,
        age / 60,
    )
    with contextlib.suppress(FileNotFoundError):
        os.remove(lock)
    return True


def switched_on() -> bool:
    """False when ``QDQFORGE_FUSED=0`` turns the compiled and fused kernels off."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def observer_ops() -> SimpleNamespace | None:
    """The compiled observer ops (``torch.ops.qdqforge_obs``), or None when
    ``QDQFORGE_FUSED=0`` or the kernels could not be built here (their callers take their torch
    paths then)."""
    if not switched_on():
        return None
    ops = cpu_ops()
    return None if ops is None else ops.observe


def cpu_ops() -> SimpleNamespace | None:
    """The compiled ops (``ulq_act``, ``arq_retrain``, ``ulq_weight``, and the observers' ops as
    ``observe``), or None when they cannot be built here; tried once per process."""
    if "ops" in _state:
        return _state["ops"]
    with _lock:
        if "ops" not in _state:
            try:
                _state["ops"] = _build()
            except Exception as e:  # no compiler, no ninja, a failed build: all mean "fall back"
                reason = str(e).strip().splitlines()[-1][:200] if str(e).strip() else repr(e)
                logger.warning(
                    "compiled CPU QAT kernels unavailable (%s: %s); using the slower Python "
                    "path (same values)",
                    type(e).__name__,
                    reason,
                )
                _state["ops"] = None
    return _state["ops"]


def reset() -> None:
    """Forget the outcome of the last attempt (tests; the loaded library stays loaded)."""
    _state.clear()


def main() -> None:
    """Build (or load) the kernels now and log whether they are available; never fails."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ok = cpu_ops() is not None
    logger.info("compiled CPU QAT kernels: %s", "available" if ok else "not available")
