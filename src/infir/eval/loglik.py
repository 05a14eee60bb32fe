"""Log-likelihood of continuations given contexts, for multiple-choice tasks (MMLU).

Tokenisation follows lm-evaluation-harness, so choices agree with it: trailing spaces of the context
move to the continuation, the pair is encoded whole, and the continuation is whatever follows the
context's own tokens. Requests sharing a context whose continuations are single tokens (" A", " B", ...)
are answered by one forward pass over the context; the rest get one row each. Rows are sorted by length
and right-padded, so a batch wastes little compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F


@dataclass
class Scored:
    logprob: float
    greedy: bool  # every continuation token is the model's argmax


def encode_pair(tokenizer, context: str, continuation: str, add_special_tokens: bool = True):
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=add_special_tokens)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=add_special_tokens)["input_ids"]
    return list(ctx), list(whole[len(ctx) :])


@dataclass
class _Row:
    tokens: list[int]  # model input
    # (request index, first logits position, continuation ids) read off this row
    reads: list[tuple[int, int, list[int]]]


def _plan(encoded: Sequence[tuple[list[int], list[int]]], prefix_id: int, max_length: int) -> list[_Row]:
    rows: list[_Row] = []
    shared: dict[tuple[int, ...], _Row] = {}
    for i, (ctx, cont) in enumerate(encoded):
        if not cont:
            raise ValueError(f"request {i}: the continuation encodes to no tokens")
        ctx = ctx or [prefix_id]  # an empty context is conditioned on the BOS/EOS token, as lm-eval does
        if len(cont) == 1 and len(ctx) <= max_length:
            row = shared.get(tuple(ctx))
            if row is None:
                row = shared[tuple(ctx)] = _Row(ctx, [])
                rows.append(row)
            row.reads.append((i, len(ctx) - 1, cont))
        else:
            # Predict every continuation token: feed context + continuation minus its last token,
            # truncated on the left to the model's window.
            full = (ctx + cont)[-(max_length + 1) :]
            rows.append(_Row(full[:-1], [(i, len(full) - 1 - len(cont), cont)]))
    return rows


def _batches(rows: list[_Row], batch_size: int, vocab_size: int, logits_bytes: int = 1 << 30):
    """Rows (longest first) in batches of at most `batch_size`, with full logits under `logits_bytes`."""
    start = 0
    while start < len(rows):
        width = len(rows[start].tokens)  # the first row of a batch is its widest
        fit = max(1, logits_bytes // (width * vocab_size * 4))
        yield rows[start : start + min(batch_size, fit)]
        start += min(batch_size, fit)


@torch.inference_mode()
def loglikelihood(
    model,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    batch_size: int = 16,
    add_special_tokens: bool = True,
    progress: Callable[[int], object] | None = None,
) -> list[Scored]:
    """Log-probability (and greediness) of each continuation after its context."""
    device = next(model.parameters()).device
    max_length = getattr(model.config, "max_position_embeddings", 2048)
    prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    encoded = [encode_pair(tokenizer, c, x, add_special_tokens) for c, x in requests]
    rows = sorted(_plan(encoded, prefix_id, max_length), key=lambda r: -len(r.tokens))
    results: list[Scored | None] = [None] * len(requests)
    for batch in _batches(rows, batch_size, model.config.vocab_size):
        width = len(batch[0].tokens)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, row in enumerate(batch):
            ids[r, : len(row.tokens)] = torch.tensor(row.tokens)
            mask[r, : len(row.tokens)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for r, row in enumerate(batch):
            for index, first, cont in row.reads:
                logprobs = F.log_softmax(logits[r, first : first + len(cont)].float(), dim=-1)
                target = torch.tensor(cont, device=logprobs.device)
                picked = logprobs.gather(-1, target[:, None]).squeeze(-1)
                results[index] = Scored(float(picked.sum()), bool((logprobs.argmax(-1) == target).all()))
        if progress is not None:
            progress(len(batch))
    return results  # type: ignore[return-value]
