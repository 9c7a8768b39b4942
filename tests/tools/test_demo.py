"""The demo runs end to end (trimmed epochs) and every stage keeps the model's accuracy."""

from __future__ import annotations

from qdqforge.demo import run


def test_demo_quick_run_writes_files_and_keeps_accuracy(tmp_path):
    rows = run(tmp_path, epochs=3)
    accuracies = {stage: float(acc.rstrip("%")) for stage, acc, _ in rows}
    fp32 = accuracies["FP32 torch"]
    assert fp32 > 80.0
    for stage in (
        "exported ONNX in onnxruntime",
        "canonicalize + fold_bn, ORT",
        "reimported torch module",
    ):
        assert abs(accuracies[stage] - fp32) < 0.3, stage
    assert {p.name for p in tmp_path.iterdir()} >= {"digits_folded.onnx", "diff.html"}
