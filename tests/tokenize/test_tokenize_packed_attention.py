"""A real LlamaForCausalLM forward on packed rows: documents do not see each other.

transformers 5.x builds a block-diagonal causal mask from position ids that restart at 0 when no
attention mask and no cache are given; these tests pin that behaviour down for our batches.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from infir.tokenize.loader import build_loader
from infir.tokenize.packing import IGNORE_INDEX, pack_row

VOCAB = 1024


def _model(attn: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        attn_implementation=attn,
    )
    return LlamaForCausalLM(cfg).eval()


def _logits(model, ids, pos=None) -> torch.Tensor:
    kwargs = {"position_ids": torch.from_numpy(pos)[None]} if pos is not None else {}
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids)[None], use_cache=False, **kwargs).logits[0]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_changing_document_a_leaves_document_b_unchanged(attn):
    rng = np.random.default_rng(0)
    eos = 1
    doc_a = np.append(rng.integers(2, VOCAB, 23), eos)
    doc_a2 = np.append(rng.integers(2, VOCAB, 23), eos)  # same length, other content
    doc_a3 = np.append(rng.integers(2, VOCAB, 9), eos)  # other length: B moves in the row
    doc_b = np.append(rng.integers(2, VOCAB, 30), eos)
    tail = rng.integers(2, VOCAB, 64)
    model = _model(attn)

    def b_logits(a, pos_ids=True):
        row = pack_row([a, doc_b, tail[: 64 - len(a) - len(doc_b)]], 64)
        logits = _logits(model, row[0], row[1] if pos_ids else None)
        return logits[len(a) : len(a) + len(doc_b)]

    alone = _logits(model, doc_b, np.arange(len(doc_b)))
    for a in (doc_a, doc_a2, doc_a3):
        torch.testing.assert_close(b_logits(a), alone, atol=2e-5, rtol=1e-4)
    # Control: without the position ids the model attends across documents, and B's logits move.
    assert not torch.allclose(b_logits(doc_a, pos_ids=False), b_logits(doc_a2, pos_ids=False), atol=1e-3)


def test_loader_rows_equal_their_documents_run_alone(tokenized):
    model = _model("sdpa")
    loader = build_loader(tokenized, "pretrain", 128, 8, seed=0)
    rows = [
        (b["input_ids"][r], b["position_ids"][r])
        for b in (loader.batch(s) for s in range(40))
        for r in range(8)
        if int((b["position_ids"][r] == 0).sum()) > 1
    ][:4]
    assert len(rows) == 4, "the fixture should pack several documents into some rows"
    ids, pos = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    multi = range(len(rows))
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits
    for r in multi:
        starts = torch.nonzero(pos[r] == 0).flatten().tolist() + [ids.shape[1]]
        for s, e in itertools.pairwise(starts):
            with torch.no_grad():
                alone = model(input_ids=ids[r : r + 1, s:e], use_cache=False).logits[0]
            torch.testing.assert_close(packed[r, s:e], alone, atol=2e-5, rtol=1e-4)


def test_model_loss_uses_our_labels_as_documented(tokenized):
    """transformers shifts labels itself: logits at t are scored against labels[t+1]."""
    model = _model("sdpa")
    batch = build_loader(tokenized, "pretrain", 128, 2, seed=0).batch(0)
    with torch.no_grad():
        out = model(**batch, use_cache=False)
    logits, labels = out.logits[:, :-1], batch["labels"][:, 1:]
    mask = labels != IGNORE_INDEX
    manual = F.cross_entropy(logits[mask].float(), labels[mask])
    torch.testing.assert_close(out.loss, manual)
    # targets: every token except each segment's first (and the row's first, dropped by the shift)
    assert int(mask.sum()) == int((batch["position_ids"][:, 1:] != 0).sum())
