"""The demo runs end to end (trimmed epochs): engine stages keep accuracy, PTQ/QAT stay close."""

from __future__ import annotations

from qdqforge.demo import run


def test_demo_quick_run_writes_files_and_keeps_accuracy(tmp_path):
    rows = run(tmp_path, epochs=3)
    accuracies = {stage: float(acc.rstrip("%")) for stage, acc, _ in rows if acc != "-"}
    fp32 = accuracies["FP32 torch"]
    assert fp32 > 80.0
    for stage in (
        "exported ONNX in onnxruntime",
        "canonicalize + fold_bn, ORT",
        "reimported torch module",
    ):
        assert abs(accuracies[stage] - fp32) < 0.3, stage
    ptq = [s for s in accuracies if s.startswith("PTQ") and "QDQ" not in s]
    assert len(ptq) == 3
    for stage in ptq:  # 450 test images: one image is 0.22 pt
        assert accuracies[stage] >= fp32 - 1.0, stage
    assert "PTQ QDQ ONNX, ORT int8 kernels" in accuracies  # no promise: onnxruntime's kernels
    assert accuracies["PTQ fake-quant ONNX, ORT"] == accuracies["PTQ deploy ONNX, ORT int8 kernels"]
    qat_torch, qat_deploy = (
        accuracies[f"QAT {k}"] for k in ("W8A8 (ULQ + ARQ), torch", "deploy ONNX, ORT int8 kernels")
    )
    assert qat_torch >= fp32 - 1.0 and abs(qat_deploy - qat_torch) <= 0.5
    written = {p.name for p in tmp_path.iterdir()}
    assert written >= {"diff.html", "ptq_fake_quant_model.onnx", "ptq_deploy_model.onnx"}
    assert written >= {"qat_fake_quant_model.onnx", "qat_deploy_model.onnx", "qat_record.txt"}
