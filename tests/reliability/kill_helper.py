"""A fork server for the SIGKILL test: import qdqforge once, fork savers that loop forever.

Run as ``python -m tests.reliability.kill_helper``. It reads one JSON command per line on stdin
and answers one JSON line on stdout:

* ``{"cmd": "qat", "config", "record", "seed"}`` builds a QAT model here (one thread, before
  any fork) and answers ``{"ok": true}``;
* ``{"cmd": "save", "kind": "ptq"|"qat", "args": {...}, "external": bool, "once": bool}`` forks
  a child that calls ``save_model`` (or ``save_quant_retrain_model``) back to back until it is
  killed and answers ``{"pid": child}``; with ``once`` it saves once and the answer is
  ``{"status": exit status}``; ``external`` lowers the 2 GB threshold to use external data;
* ``{"cmd": "naive", "path", "size"}`` forks a child that rewrites ``path`` in place (no temp
  file) forever: the control that shows the test can see a partial file;
* ``{"cmd": "quit"}`` ends the server.

Forking from a process that has only imported torch (and built the QAT model on one thread) is
what ``multiprocessing``'s forkserver does; here it is explicit so the preload is guaranteed.
"""

from __future__ import annotations

import json
import os
import sys

import torch

torch.set_num_threads(1)  # no OpenMP pool before fork

import qdqforge  # noqa: E402
from qdqforge.graph import io  # noqa: E402
from tests.reliability.world import kill_test_model  # noqa: E402

STATE: dict = {}


def _save(kind: str, args: dict, external: bool, forever: bool = True) -> None:
    if external:
        io.EXTERNAL_THRESHOLD = 1000
    while True:
        if kind == "ptq":
            qdqforge.save_model(args["onnx"], args["record"], args["save_path"])
        else:
            qdqforge.save_quant_retrain_model(
                args["config"], STATE["qat"], args["record"], args["save_path"], STATE["x"]
            )
        if not forever:
            os._exit(0)


def _naive_forever(path: str, size: int) -> None:
    chunk = os.urandom(1 << 16)
    while True:
        with open(path, "wb") as handle:  # the non-atomic write this test must catch
            for _ in range(size // len(chunk)):
                handle.write(chunk)
                handle.flush()


def _fork(target, *args) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            target(*args)
        finally:
            os._exit(1)  # an exception in the child: exit status 1
    return pid


def _handle(command: dict) -> dict:
    _reap()
    if command["cmd"] == "qat":
        model, x = kill_test_model()
        STATE["x"] = x
        STATE["qat"] = qdqforge.create_quant_retrain_model(
            command["config"], model, command["record"], x
        )
        with torch.no_grad():
            STATE["qat"].eval()(x)
        return {"ok": True}
    if command["cmd"] == "save":
        once = command["once"]
        pid = _fork(_save, command["kind"], command["args"], command["external"], not once)
        if once:
            return {"status": os.waitpid(pid, 0)[1]}
        return {"pid": pid}
    if command["cmd"] == "naive":
        return {"pid": _fork(_naive_forever, command["path"], command["size"])}
    raise ValueError(f"unknown command {command!r}")


def _reap() -> None:
    """Collect the savers the test has killed (no zombies)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            break
        print(json.dumps(_handle(command)), flush=True)


if __name__ == "__main__":
    main()
