"""The zoo's transformers architectures, built from configs (random init, no download).

``"ci"``: 2 layers, hidden 32, 8-16 tokens. ``"full"``: the published shape of a small
checkpoint (named in ``covers``); decoders above ~150M parameters keep fewer layers (said so).
Encoders get ``(input_ids, attention_mask)`` with padding in the last sample; decoders get
``input_ids`` (their causal mask is built inside) and ``use_cache=False``.
"""

from __future__ import annotations

from bench.zoo_cases import ZooCase, float_inputs, token_inputs
from bench.zoo_import import import_transformers

V = 96  # CI vocabulary
_ENC = {"vocab_size": V, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
_ENC |= {"intermediate_size": 64, "max_position_embeddings": 64}
_DEC = {**_ENC, "num_attention_heads": 4, "num_key_value_heads": 2, "use_cache": False}
_LLAMA_FULL = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536}
_LLAMA_FULL |= {"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3}
_QWEN_FULL = {"vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864}
_QWEN_FULL |= {"num_hidden_layers": 8, "num_attention_heads": 14, "num_key_value_heads": 2}
_ALBERT_FULL = {"embedding_size": 128, "hidden_size": 768, "num_attention_heads": 12}
_ALBERT_FULL |= {"intermediate_size": 3072}
_T5_CI = {"vocab_size": V, "d_model": 32, "d_kv": 16, "d_ff": 64, "num_layers": 2, "num_heads": 2}
_W2V_CI = {**_ENC, "conv_dim": (16, 16), "conv_stride": (5, 2), "conv_kernel": (10, 3)}
_W2V_CI |= {"num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
_W2V_CI.pop("vocab_size")
_WHISPER_CI = {"num_mel_bins": 8, "d_model": 32, "encoder_layers": 2}
_WHISPER_CI |= {"encoder_attention_heads": 2, "encoder_ffn_dim": 64, "max_source_positions": 8}
_WHISPER_FULL = {"num_mel_bins": 80, "d_model": 384, "encoder_layers": 4}
_WHISPER_FULL |= {"encoder_attention_heads": 6, "encoder_ffn_dim": 1536}
_BART_CI = {"vocab_size": V, "d_model": 32, "encoder_layers": 1, "decoder_layers": 1}
_BART_CI |= {"encoder_attention_heads": 2, "decoder_attention_heads": 2, "use_cache": False}
_BART_CI |= {"encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 64}
_VIT_CI = {k: v for k, v in _ENC.items() if k not in ("vocab_size", "max_position_embeddings")}
_VIT_CI |= {"image_size": 32, "patch_size": 8}
_NO_CACHE = {"use_cache": False}
_TOKENS = {"bos_token_id": V - 2, "eos_token_id": V - 1}  # inside the CI vocabulary

# class -> (covers, config class, CI kwargs, full kwargs, CI inputs, full inputs)
HF_MODELS: dict[str, tuple] = {
    "BertModel": ("BERT-base: attention mask, GELU", "BertConfig", _ENC, {}, 12, 128),
    "RobertaModel": ("RoBERTa-base: position ids via CumSum", "RobertaConfig", _ENC, {}, 12, 128),
    "DistilBertModel": (
        "DistilBERT-base",
        "DistilBertConfig",
        {"vocab_size": V, "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64},
        {},
        12,
        128,
    ),
    "AlbertModel": (
        "ALBERT-base: shared layers, factorised embedding",
        "AlbertConfig",
        {**_ENC, "embedding_size": 16},
        _ALBERT_FULL,
        12,
        128,
    ),
    "ElectraModel": ("ELECTRA-small", "ElectraConfig", {**_ENC, "embedding_size": 16}, {}, 12, 128),
    "GPT2Model": (
        "GPT-2 (124M): Conv1D layers, causal mask",
        "GPT2Config",
        {"vocab_size": V, "n_embd": 32, "n_layer": 2, "n_head": 2, "use_cache": False, **_TOKENS},
        _NO_CACHE,
        12,
        128,
    ),
    "OPTModel": (
        "OPT-125m: learned positions, causal mask",
        "OPTConfig",
        {**_ENC, "ffn_dim": 64, "word_embed_proj_dim": 32, "use_cache": False},
        _NO_CACHE,
        12,
        128,
    ),
    "LlamaModel": (
        "SmolLM-135M shape: RMSNorm, RoPE, SwiGLU, GQA",
        "LlamaConfig",
        _DEC,
        _LLAMA_FULL,
        12,
        128,
    ),
    "Qwen2Model": ("Qwen2-0.5B shape, 8 of 24 layers", "Qwen2Config", _DEC, _QWEN_FULL, 12, 128),
    "MistralModel": (
        "Mistral: sliding window",
        "MistralConfig",
        {**_DEC, "sliding_window": 8},
        {},
        12,
        128,
    ),
    "GemmaModel": (
        "Gemma: GeGLU, scaled embedding",
        "GemmaConfig",
        {**_DEC, "head_dim": 8},
        {},
        12,
        128,
    ),
    "T5EncoderModel": ("T5-small encoder: relative position bias", "T5Config", _T5_CI, {}, 12, 128),
    "CLIPTextModel": (
        "CLIP text (ViT-B/32): causal mask, EOS pooling",
        "CLIPTextConfig",
        {**_ENC, **_TOKENS},
        {},
        12,
        77,
    ),
    "BartModel": (
        "BART: encoder-decoder, shifted decoder input",
        "BartConfig",
        _BART_CI,
        _NO_CACHE,
        12,
        128,
    ),
}


def _model_class(name: str):
    if name == "WhisperEncoder":
        import_transformers()
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder
    return getattr(import_transformers(), name)


def _builder(cls: str, config: str, ci: dict, full: dict):
    def build(size: str):
        kwargs = ci if size == "ci" else full
        model = _model_class(cls)(getattr(import_transformers(), config)(**kwargs))
        return model.eval()

    return build


def _causal(name: str) -> bool:
    return name in (
        "GPT2Model",
        "OPTModel",
        "LlamaModel",
        "Qwen2Model",
        "MistralModel",
        "GemmaModel",
    )


def hf_cases() -> list[ZooCase]:
    """One case per :data:`HF_MODELS` entry, plus Whisper's encoder, Wav2Vec2 and ViT."""
    cases = [
        ZooCase(
            f"hf/{name}",
            covers,
            _builder(name, config, ci, full),
            token_inputs(V, n, m, not _causal(name)),
        )
        for name, (covers, config, ci, full, n, m) in HF_MODELS.items()
    ]
    speech = (
        ("WhisperEncoder", "Whisper-tiny encoder: Conv1d front end", "WhisperConfig",
         _WHISPER_CI, _WHISPER_FULL, float_inputs(8, 16, full=(80, 3000))),
        ("Wav2Vec2Model", "Wav2Vec2-base: conv feature encoder, GroupNorm", "Wav2Vec2Config",
         _W2V_CI, {}, float_inputs(400, full=(16000,))),
        ("ViTModel", "HF ViT-base", "ViTConfig", _VIT_CI, {}, None),
    )  # fmt: skip
    for name, covers, config, ci, full, inputs in speech:
        if inputs is None:
            from bench.zoo_cases import image_inputs

            inputs = image_inputs(32, 224)
        cases.append(ZooCase(f"hf/{name}", covers, _builder(name, config, ci, full), inputs))
    return cases
