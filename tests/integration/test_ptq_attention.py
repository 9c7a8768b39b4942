def test_auto_calibration_ranking_quantizes_both_operands(flow):
    """``layer_cosines`` (auto-calibration's ranking) Q/DQs both operands from the record."""
    tmp, _, batches, _ = flow
    layer = "blocks.0.matmul_0"
    rec = read_record(tmp / "r.txt")[layer]
    graph = io.load(tmp / "m.onnx")
    squeezed = dataclasses.replace(rec, scale_h=rec.scale_h / 64)  # input 1 saturates
    cosines = {
        name: layer_cosines(graph, {layer: grid}, batches[0])[layer]
        for name, grid in (("record", rec), ("squeezed", squeezed))
    }
    assert 0.99 < cosines["record"] < 1.0
    assert cosines["squeezed"] < cosines["record"] - 0.01, cosines
