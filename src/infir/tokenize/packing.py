"""Packing token fragments into fixed-length rows where no document attends to another.

A row is `input_ids`, `position_ids` and `labels`. Position ids restart at 0 at every fragment
(each fragment is one document, or the part of one that fits), which is what transformers 5.x
Llama reads as packed sequences: with `attention_mask=None` and no cache,
`masking_utils.find_packed_sequence_indices` turns the restarts into a block-diagonal causal mask
(sdpa, eager, flex), and flash-attention uses them as varlen boundaries.

Labels follow transformers' convention: the model shifts them itself (logits at t predict
labels[t+1]). A fragment's first token gets -100, because predicting it would mean predicting
a document's start from the previous document, which it cannot see. Every document's
end-of-text token *is* a target, predicted from its own document: the model learns where
documents end. A row's very first label is dropped by the shift anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_INDEX = -100


def pack_row(
    fragments: Sequence[np.ndarray], seq_len: int, pad_id: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, position_ids, labels), int64 arrays of `seq_len`.

    Fragments must fill the row exactly unless `pad_id` is given; the padding then forms a
    segment of its own (positions restart at 0) with no targets, so it changes nothing.
    """
    lengths = np.fromiter((len(f) for f in fragments), dtype=np.int64, count=len(fragments))
    used = int(lengths.sum())
    if used > seq_len or (used < seq_len and pad_id is None):
        raise ValueError(f"fragments hold {used} tokens for a row of {seq_len}")
    input_ids = np.empty(seq_len, dtype=np.int64)
    if fragments:
        np.concatenate(fragments, out=input_ids[:used], casting="unsafe")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0, np.int64)
    position_ids = np.arange(seq_len, dtype=np.int64)
    position_ids[:used] -= np.repeat(starts, lengths)
    labels = input_ids.copy()
    labels[starts] = IGNORE_INDEX
    if used < seq_len:
        input_ids[used:] = pad_id
        labels[used:] = IGNORE_INDEX
        position_ids[used:] = np.arange(seq_len - used)
    return input_ids, position_ids, labels
