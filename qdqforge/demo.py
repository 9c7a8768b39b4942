"""``make demo``: the engine end to end on real data (scikit-learn's digits), with a report.

Trains a small conv net with BN and residuals on the 8x8 digits in a few seconds, exports it to
ONNX, rewrites it (canonicalize + fold_bn), reimports it as a trainable torch module, then
quantizes it with AMCT's PTQ flow (DMQ balancing, IFMR calibration) and with QAT (ULQ/ARQ), saves
fake-quant and deploy ONNX for both, and prints FP32 / PTQ / QAT / deploy-in-onnxruntime
accuracy in one table. ``demo_out/diff.html`` shows what quantization did to the graph (FP32 ONNX
vs the PTQ fake-quant ONNX; open it in a browser).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from qdqforge.demo_data import DigitsNet, digits_splits, evaluate, train
from qdqforge.demo_stages import ort_accuracy, ptq_stage, qat_stage
from qdqforge.graph import io
from qdqforge.graph.diff.graph_diff import diff_graphs, write_diff_html

log = logging.getLogger("qdqforge.demo")


def run(out_dir: Path, epochs: int) -> list[tuple[str, str, str]]:
    import qdqforge
    from qdqforge.passes.infra.pipeline import rewrite

    (x_tr, y_tr), (x_te, y_te) = digits_splits()
    torch.manual_seed(0)
    model, t0 = DigitsNet(), time.perf_counter()
    train(model, x_tr, y_tr, epochs=epochs)
    rows = [
        (
            "FP32 torch",
            f"{evaluate(model, x_te, y_te):.2%}",
            f"trained in {time.perf_counter() - t0:.1f} s",
        )
    ]
    proto = qdqforge.export(model, (x_te[:8],))
    rows.append(
        (
            "exported ONNX in onnxruntime",
            f"{ort_accuracy(proto, x_te, y_te):.2%}",
            f"{len(proto.graph.node)} nodes",
        )
    )
    folded = rewrite(proto)
    io.save(proto, out_dir / "digits_fp32.onnx")
    io.save(folded, out_dir / "digits_folded.onnx")
    rows.append(
        (
            "canonicalize + fold_bn, ORT",
            f"{ort_accuracy(folded, x_te, y_te):.2%}",
            f"{len(folded.graph.node)} nodes",
        )
    )
    reimported = qdqforge.reimport(proto)
    rows.append(
        (
            "reimported torch module",
            f"{evaluate(reimported, x_te, y_te):.2%}",
            "state_dict keys match",
        )
    )
    data = ((x_tr, y_tr), (x_te, y_te))
    ptq_rows, fake_quant = ptq_stage(model, data, out_dir)
    write_diff_html(diff_graphs(proto, io.load(fake_quant)), out_dir / "diff.html")
    return rows + ptq_rows + qat_stage(model, data, out_dir, epochs=max(1, epochs // 4))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="qdqforge end-to-end demo on sklearn digits")
    parser.add_argument("--out", default="demo_out", help="folder for the files it writes")
    parser.add_argument("--quick", action="store_true", help="fewer training epochs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = run(out, epochs=4 if args.quick else 12)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'stage'.ljust(width)}  {'top-1':>7}  notes")
    for stage, acc, note in rows:
        print(f"{stage.ljust(width)}  {acc:>7}  {note}")
    print(f"\nfiles written under {out.resolve()}:")
    for path in sorted(out.iterdir()):
        print(f"  {path.name}")
    print(f"open {out.resolve() / 'diff.html'} to see what quantization changed in the graph")


if __name__ == "__main__":
    main()
