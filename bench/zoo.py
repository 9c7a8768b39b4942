"""The zoo matrix: timm and transformers architectures through the engine, PTQ and QAT.

For every model, three stages (:mod:`bench.zoo_stages`), each reported as ``ok`` / the typed
error's class / ``mismatch`` / ``crash:<type>`` with its seconds, then one table (markdown) and
the pass rates. Models are random-initialised from their configs (no download).

Usage: ``python bench/zoo.py [--size full|ci] [--only NAME ...] [--stages abc] [--json out.json]``
(needs the ``zoo`` extra: ``pip install -e ".[zoo]"``). ``--size full`` is the default.
``--from-json A.json B.json`` prints the table of saved runs (a later file's results win).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.zoo_cases import SIZES, ZooCase
from bench.zoo_hf import hf_cases
from bench.zoo_stages import STAGES, StageResult, run_stage
from bench.zoo_timm import timm_cases


def all_cases() -> list[ZooCase]:
    """Every zoo architecture, timm first."""
    return timm_cases() + hf_cases()


def run_case(case: ZooCase, size: str, stages: str) -> dict[str, StageResult]:
    """The stages of one case, each in its own temporary folder."""
    results = {}
    for stage in stages:
        with tempfile.TemporaryDirectory(prefix="zoo_") as tmp:
            results[stage] = run_stage(STAGES[stage], case, size, Path(tmp))
        print(f"  {case.name} ({stage}): {results[stage].status} {results[stage].seconds:.1f}s "
              f"{results[stage].detail[:300]}", file=sys.stderr, flush=True)  # fmt: skip
    return results


def cell(result: StageResult | None) -> str:
    if result is None:
        return "-"
    numbers = result.numbers
    if not result.ok:
        return f"{result.status} ({result.seconds:.0f} s)"
    if "deploy_rel" in numbers:
        figures = f"{numbers['layers']} layers, fq {numbers['fake_quant_rel']:.2g}"
        figures += f", deploy {numbers['deploy_rel']:.2g}"
    elif "fake_quant_rel" in numbers:
        figures = f"{numbers['layers']} layers, fq {numbers['fake_quant_rel']:.2g}"
    else:
        figures = f"out {numbers['output_rel']:.1e}"
    return f"ok {result.seconds:.0f} s; {figures}"


def table(rows: dict[str, tuple[ZooCase, dict[str, StageResult]]], stages: str) -> str:
    """The markdown matrix and one line of pass rates per stage."""
    head = ["model", "covers", *(f"({s})" for s in stages)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, (case, results) in rows.items():
        lines.append(
            f"| {name} | {case.covers} | " + " | ".join(cell(results.get(s)) for s in stages) + " |"
        )
    for stage in stages:
        ran = [results[stage] for _, results in rows.values() if stage in results]
        passed = sum(result.ok for result in ran)
        share = 100 * passed / max(len(ran), 1)
        lines.append(f"\n({stage}): {passed} of {len(ran)} run pass ({share:.0f}%)")
    return "\n".join(lines)


def load_rows(paths: list[Path]) -> dict[str, tuple[ZooCase, dict[str, StageResult]]]:
    """Rows from ``--json`` files, in the zoo's order; a later file's stage result wins."""
    merged: dict[str, dict[str, StageResult]] = {}
    for path in paths:
        for name, stages in json.loads(path.read_text()).items():
            merged.setdefault(name, {}).update({s: StageResult(**r) for s, r in stages.items()})
    return {c.name: (c, merged[c.name]) for c in all_cases() if c.name in merged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="full")
    parser.add_argument("--only", nargs="*", help="model names (substrings), run in this order")
    parser.add_argument("--stages", default="abc")
    parser.add_argument("--json", type=Path, help="write every stage's result here too")
    parser.add_argument("--from-json", type=Path, nargs="+", help="print the table of saved runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.from_json:
        print(table(load_rows(args.from_json), args.stages))
        return 0
    cases = all_cases()
    if args.only:  # in the order given
        cases = [c for o in args.only for c in cases if o in c.name]
    rows = {}
    for case in cases:
        rows[case.name] = (case, run_case(case, args.size, args.stages))
        if args.json:  # after every case: a long run leaves what it measured
            dump = {n: {s: vars(r) for s, r in res.items()} for n, (_, res) in rows.items()}
            args.json.write_text(json.dumps(dump, indent=1, default=str))
    print(table(rows, args.stages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
