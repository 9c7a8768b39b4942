"""``qdqforge passes list|ops|run|bisect``: see and debug what each graph pass does.

``run`` writes every stage, its GraphDiff (JSON + HTML) and ``passlog.jsonl`` into ``--dump-dir``
(:func:`qdqforge.passes.debug.run.run_debug`). Exit codes of ``run``: 0 ok, 1 a pass failed (the
graph before it is dumped), 2 a numeric check went over ``--max-error``, 3 unsupported ops.
``bisect`` exits 2 when it finds a pass over the threshold, 0 when there is none.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qdqforge.cli.say import say
from qdqforge.errors import ConfigError
from qdqforge.graph import io
from qdqforge.graph.path_roles import check_roles
from qdqforge.passes import all_passes
from qdqforge.passes.debug.bisect import DEFAULT_BISECT_THRESHOLD, bisect
from qdqforge.passes.debug.inputs import load_feeds, random_feeds
from qdqforge.passes.debug.ops import coverage
from qdqforge.passes.debug.report import coverage_table, op_table, stage_line
from qdqforge.passes.debug.run import (
    EXIT_NUMERIC,
    EXIT_UNSUPPORTED,
    run_debug,
    select_passes,
    stage_files,
)
from qdqforge.passes.infra.base import PassContext
from qdqforge.passes.infra.pipeline import DEFAULT_PIPELINE
from qdqforge.safe_text import shown


def register(subparsers) -> None:
    """Add ``passes`` with its ``list``, ``ops``, ``run`` and ``bisect`` actions."""
    parser = subparsers.add_parser("passes", help="list, run and debug graph passes")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="registered passes").set_defaults(func=run_list)
    ops = actions.add_parser("ops", help="runtime coverage of a model's ops (exit 3: unsupported)")
    ops.add_argument("model", help="ONNX file")
    ops.set_defaults(func=run_ops)
    _add_run(actions)
    _add_bisect(actions)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX file")
    parser.add_argument("--config", help="quantization config, handed to the passes")
    parser.add_argument(
        "--pipeline",
        default=",".join(DEFAULT_PIPELINE),
        help=f"comma-separated pass names (default: {','.join(DEFAULT_PIPELINE)})",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--inputs", help=".npz with the graph inputs (by name or arr_0, ...)")
    source.add_argument("--random-inputs", action="store_true", help="random inputs from shapes")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-inputs")


def _add_run(actions) -> None:
    run = actions.add_parser("run", help="run a pipeline, dumping and diffing every stage")
    _add_common(run)
    run.add_argument("--until", help="stop after this pass")
    run.add_argument("--skip", action="append", default=[], help="leave out a pass (repeatable)")
    run.add_argument("--dump-dir", required=True, help="folder for stages, diffs and passlog")
    run.add_argument("--check-ort", action="store_true", help="run every stage in onnxruntime")
    run.add_argument("--max-error", type=float, help="exit 2 when a pass changes outputs more")
    run.set_defaults(func=run_run)


def _add_bisect(actions) -> None:
    bis = actions.add_parser("bisect", help="first pass and tensors where the numbers diverge")
    _add_common(bis)
    bis.add_argument("--threshold", type=float, default=DEFAULT_BISECT_THRESHOLD)
    bis.set_defaults(func=run_bisect)


def run_list(args: argparse.Namespace) -> int:
    """Print every registered pass with the first line of its docstring."""
    passes = all_passes()
    width = max((len(name) for name in passes), default=0)
    for name, cls in passes.items():
        say(f"{name.ljust(width)}  {cls.summary()}")
    return 0


def run_ops(args: argparse.Namespace) -> int:
    """Print the runtime coverage table; exit 3 when an op is unsupported."""
    rows = coverage(io.load_proto(args.model))
    say(coverage_table(rows))
    missing = [r for r in rows if not r.supported]
    if missing:
        names = ", ".join(shown(f"{r.domain + '::' if r.domain else ''}{r.op}") for r in missing)
        say(f"unsupported: {names}", err=True)
        return EXIT_UNSUPPORTED
    return 0


def run_run(args: argparse.Namespace) -> int:
    """Run the selected passes with dumps; print one line per pass and the op-count table."""
    names = select_passes(_pipeline(args), until=args.until, skip=_split(args.skip))
    check_roles("passes run", inputs=_input_files(args), outputs=stage_files(args.dump_dir, names))
    proto = io.load_proto(args.model)
    feeds = _feeds(args, proto, wanted=args.check_ort or args.max_error is not None)
    result = run_debug(
        proto,
        names,
        dump_dir=args.dump_dir,
        feeds=feeds,
        max_error=args.max_error,
        ctx=_context(args),
    )
    for stage in result.stages:
        say(stage_line(stage))
    if result.stages:
        say(op_table(result.ops_before, result.ops_after))
    _explain(result, args)
    say(f"stages written to {shown(args.dump_dir)}")
    return result.exit_code


def run_bisect(args: argparse.Namespace) -> int:
    """Print the first pass over ``--threshold`` and its first diverging tensors."""
    proto = io.load_proto(args.model)
    feeds = _feeds(args, proto, wanted=True)
    result = bisect(proto, _pipeline(args), feeds, threshold=args.threshold, ctx=_context(args))
    for stage in result.run.stages:
        say(f"{stage_line(stage)}  vs input {stage.error_vs_input or 0.0:.2g}")
    if result.run.exit_code not in (0, EXIT_NUMERIC):
        _explain(result.run, args)
        return result.run.exit_code
    if result.culprit is None:
        say(f"no pass changes the outputs by more than {args.threshold:g}")
        return 0
    stage = result.culprit
    say(f"first pass over {args.threshold:g}: [{stage.idx:02d}] {stage.pass_name}")
    say("first diverging tensors (topological order):")
    for t in result.tensors:
        where = f"{shown(t.name)}  ({shown(t.op)} {shown(t.node)})"
        say(f"  {where}  max|Δ| {t.max_abs:.3g}  rel {t.max_rel:.3g}")
    return EXIT_NUMERIC


def _explain(result, args: argparse.Namespace) -> None:
    if result.failure is not None:
        say(f"qdqforge passes: error: {shown(result.failure)}", err=True)
    if result.unsupported:
        say(f"unsupported ops in the {result.unsupported_where} graph:", err=True)
        say(coverage_table(result.unsupported), err=True)
    if result.over_threshold is not None:
        s = result.over_threshold
        say(
            f"pass {s.pass_name!r} changed the outputs by {s.max_error:.3g} > {args.max_error:g}",
            err=True,
        )


def _input_files(args: argparse.Namespace) -> dict[str, str | None]:
    return {"model": args.model, "--config": args.config, "--inputs": args.inputs}


def _pipeline(args: argparse.Namespace) -> list[str]:
    return _split([args.pipeline])


def _split(values: list[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _feeds(args: argparse.Namespace, proto, *, wanted: bool):
    if args.inputs:
        return load_feeds(args.inputs, proto)
    if args.random_inputs or wanted:
        return random_feeds(proto, seed=args.seed)
    return None


def _context(args: argparse.Namespace) -> PassContext:
    if args.config and not Path(args.config).is_file():
        raise ConfigError(f"--config {args.config!r}: no such file")
    return PassContext(config_path=args.config or None)
