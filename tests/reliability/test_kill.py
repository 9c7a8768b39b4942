"""SIGKILL in the middle of save_model / save_quant_retrain_model never leaves a partial file.

A fork server (:mod:`tests.reliability.kill_helper`) imports qdqforge once; every iteration forks
a saver that writes the same outputs back to back, kills it with SIGKILL after a delay that
walks across one save's duration (0 to 0.95 of a reference save; the walk used to start at
0.05 s, and on a machine where a QAT save of the test model takes 0.13 s, with the helper's
round trip every kill landed after the first save was complete), and then checks every target:
absent, the old bytes it held before, or byte-identical to a complete save (ONNX files also
pass ``onnx.checker``, records parse, JSON loads). Half the iterations start with old files in
place, half of the PTQ ones save with external data. A control kills a writer that rewrites a
file in place and must see a partial file, so the check can fail. 20 kills per API, about 25 s
in all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import torch

import qdqforge
from qdqforge.front.record.file import parse_record
from tests.reliability.world import kill_test_model

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("net_fake_quant_model.onnx", "net_deploy_model.onnx", "net_verify.json")
ITERATIONS = 20


class Helper:
    """The fork server, one JSON line per command and answer."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.kill_helper"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"kill helper died (exit {self.proc.poll()})"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.write('{"cmd": "quit"}\n')
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def helper():
    server = Helper()
    yield server
    server.close()


def _dead(pid: int, timeout: float = 10.0) -> None:
    """Wait until ``pid`` is gone or a zombie (its writes are over either way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.002)
    raise AssertionError(f"process {pid} survived SIGKILL")


@pytest.fixture(scope="module")
def ptq_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill_ptq")
    model, x = kill_test_model()
    qdqforge.create_quant_config(str(tmp / "c.json"), model, x, batch_num=1)
    with torch.no_grad():
        qdqforge.quantize_model(
            str(tmp / "c.json"), str(tmp / "m.onnx"), str(tmp / "r.txt"), model, x
        )(x)
    return {"onnx": str(tmp / "m.onnx"), "record": str(tmp / "r.txt")}, tmp


def _reference(helper, kind: str, args: dict, folder: Path, external: bool) -> tuple[dict, float]:
    """Bytes of every output of one complete save, and how long the save took."""
    start = time.monotonic()
    answer = helper.ask(cmd="save", kind=kind, args=_at(args, folder), external=external, once=True)
    assert answer["status"] == 0, "reference save failed"
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}, (
        time.monotonic() - start
    )


def _at(args: dict, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    record = args.get("record") if "onnx" in args else str(folder / "record.txt")
    return {**args, "record": record, "save_path": str(folder / "net")}


def _check(folder: Path, name: str, old: bytes | None, complete: dict) -> str:
    """``absent``, ``old`` or ``new`` (complete and valid); fails on anything else."""
    path = folder / name
    if not path.exists():
        return "absent"
    data = path.read_bytes()
    if old is not None and data == old:
        return "old"
    if name.endswith(".json"):
        json.loads(data)
        return "new"
    assert data == complete[name], f"{name}: {len(data)} bytes, neither old nor complete"
    if name.endswith(".onnx"):
        onnx.checker.check_model(onnx.load(str(path)))
    elif name.endswith(".txt"):
        parse_record(data.decode())
    return "new"


def _kill_loop(helper, kind, args, tmp, iterations: int, outputs) -> dict[str, set]:
    """The states each output was found in; ``seen["reference seconds"]`` holds the complete
    saves' durations the kill times were spread over (for a failure's message)."""
    modes = (False, True) if kind == "ptq" else (False,)
    references = {ext: _reference(helper, kind, args, tmp / f"ref_{ext:d}", ext) for ext in modes}
    seen: dict[str, set] = {}
    durations = {f"{seconds:.3f}" for _, seconds in references.values()}
    for i in range(iterations):
        external = kind == "ptq" and i % 4 >= 2
        complete, seconds = references[external]
        folder = tmp / f"iter_{i:02d}"
        names = [*outputs, *(f"{n}.data" for n in outputs if n.endswith(".onnx") and external)]
        olds = _plant_old(folder, names) if i % 2 else {}
        command = {"kind": kind, "args": _at(args, folder), "external": external, "once": False}
        pid = helper.ask(cmd="save", **command)["pid"]
        time.sleep(seconds * ((7 * i) % iterations) / iterations)  # walk across a whole save
        os.kill(pid, signal.SIGKILL)
        _dead(pid)
        states = {name: _check(folder, name, olds.get(name), complete) for name in names}
        for name, state in states.items():
            seen.setdefault(name, set()).add(state)
            if external and name.endswith(".onnx") and state == "new":
                assert states[f"{name}.data"] == "new", f"{name} is new but its data is not"
    return {**seen, "reference seconds": durations}


def _plant_old(folder: Path, names) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    olds = {name: f"old {name}\n".encode() for name in names}
    for name, data in olds.items():
        (folder / name).write_bytes(data)
    return olds


def test_killed_save_model_leaves_old_or_complete_files(helper, ptq_files, tmp_path):
    args, iterations = ptq_files[0], ITERATIONS
    seen = _kill_loop(helper, "ptq", args, tmp_path, iterations, OUTPUTS)
    assert seen["net_fake_quant_model.onnx"] <= {"absent", "old", "new"}
    assert len(_phases(seen)) >= 2, f"every kill landed in the same phase: {seen}"


def test_killed_save_quant_retrain_model_leaves_old_or_complete_files(helper, tmp_path):
    iterations, config = ITERATIONS, tmp_path / "qat.json"
    model, x = kill_test_model()
    qdqforge.create_quant_retrain_config(str(config), model, x)
    assert helper.ask(cmd="qat", config=str(config), record=str(tmp_path / "created.txt"))["ok"]
    outputs = (*OUTPUTS, "record.txt")
    seen = _kill_loop(helper, "qat", {"config": str(config)}, tmp_path, iterations, outputs)
    assert len(_phases(seen)) >= 2, f"every kill landed in the same phase: {seen}"


def _phases(seen: dict[str, set]) -> set[str]:
    return set().union(*(states for name, states in seen.items() if name != "reference seconds"))


def test_control_a_killed_in_place_writer_leaves_a_partial_file(helper, tmp_path):
    size, path = 1 << 25, tmp_path / "naive.bin"
    for attempt in range(10):
        pid = helper.ask(cmd="naive", path=str(path), size=size)["pid"]
        time.sleep(0.02 + 0.01 * attempt)
        os.kill(pid, signal.SIGKILL)
        _dead(pid)
        if path.exists() and path.stat().st_size % size:
            return
    pytest.fail("10 kills of an in-place writer never left a partial file: the check is blind")
