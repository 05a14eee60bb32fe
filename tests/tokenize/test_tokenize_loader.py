"""The packing mixture loader: packing, determinism, workers, ranks, resume, mixture, epochs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from infir.tokenize.loader import (
    BLOCK,
    DocumentStream,
    MixtureSchedule,
    PackedMixtureLoader,
    block_counts,
    build_loader,
    read_mixtures,
)
from infir.tokenize.packing import IGNORE_INDEX, pack_row
from infir.tokenize.shards import ShardSet, read_index
from infir.tokenize.validation import ValidationBatches

SEQ, GLOBAL = 64, 8


def _take(loader, n):
    return list(itertools.islice(iter(loader), n))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pack_row_positions_and_labels():
    a, b, c = np.array([5, 6, 7, 1]), np.array([8, 9, 1]), np.array([4])
    ids, pos, labels = pack_row([a, b, c], 8)
    assert ids.tolist() == [5, 6, 7, 1, 8, 9, 1, 4]
    assert pos.tolist() == [0, 1, 2, 3, 0, 1, 2, 0]
    # the first token of each document is no target (its context is another document); end-of-text is
    assert labels.tolist() == [IGNORE_INDEX, 6, 7, 1, IGNORE_INDEX, 9, 1, IGNORE_INDEX]
    ids, pos, labels = pack_row([a], 6, pad_id=0)
    assert ids.tolist() == [5, 6, 7, 1, 0, 0] and pos.tolist() == [0, 1, 2, 3, 0, 1]
    assert labels.tolist() == [IGNORE_INDEX, 6, 7, 1, IGNORE_INDEX, IGNORE_INDEX]
    with pytest.raises(ValueError, match="fragments hold"):
        pack_row([a, b], 6)


def test_batches_are_packed_documents(tokenized):
    eos = read_index(tokenized / "shards")["doc_end_id"]
    loader = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0)
    for batch in _take(loader, 5):
        assert all(
            batch[k].shape == (GLOBAL, SEQ) and batch[k].dtype == torch.long
            for k in ("input_ids", "labels", "position_ids")
        )
        for ids, pos, labels in zip(batch["input_ids"], batch["position_ids"], batch["labels"]):
            starts = torch.nonzero(pos == 0).flatten().tolist() + [SEQ]
            assert starts[0] == 0
            for s, e in itertools.pairwise(starts):
                assert pos[s:e].tolist() == list(range(e - s))
                segment = ids[s:e].tolist()
                assert eos not in segment[:-1]  # a segment never runs past a document end
                if e < SEQ:
                    assert segment[-1] == eos  # ... and one that is followed by another ends with it
            assert (labels[pos == 0] == IGNORE_INDEX).all()
            assert torch.equal(labels[pos != 0], ids[pos != 0])


def test_order_is_a_function_of_seed_and_step(tokenized):
    a = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=3)
    b = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=3)
    c = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=4)
    batches = _take(a, 4)
    assert all(_same(x, y) for x, y in zip(batches, _take(b, 4)))
    assert not _same(batches[0], c.batch(0))
    assert _same(a.batch(2), batches[2])  # random access equals iteration
    assert not _same(batches[0], batches[1])


def test_same_batches_for_any_number_of_workers(tokenized):
    reference = _take(build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0), 7)
    for workers in (1, 2):
        got = _take(build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0, num_workers=workers), 7)
        assert all(_same(x, y) for x, y in zip(reference, got)), f"{workers} workers"


def test_same_global_batches_for_1_and_2_ranks(tokenized):
    single = _take(build_loader(tokenized, "anneal", SEQ, GLOBAL, seed=1), 5)
    ranks = [
        _take(build_loader(tokenized, "anneal", SEQ, GLOBAL, seed=1, rank=r, world_size=2, num_workers=r), 5)
        for r in range(2)
    ]
    for step, whole in enumerate(single):
        halves = [ranks[0][step], ranks[1][step]]
        assert all(h["input_ids"].shape == (GLOBAL // 2, SEQ) for h in halves)
        joined = {k: torch.cat([h[k] for h in halves]) for k in whole}
        assert _same(whole, joined)
    with pytest.raises(ValueError, match="not divisible"):
        build_loader(tokenized, "anneal", SEQ, 7, seed=1, world_size=2)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_yields_exactly_the_next_batches(tokenized, workers):
    k, n = 5, 4
    uninterrupted = _take(build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0), k + n)
    first = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0, num_workers=workers)
    it = iter(first)
    for _ in range(k):
        next(it)
    state = first.state_dict()  # workers prefetched ahead; the state counts consumed batches only
    assert state["step"] == k
    resumed = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0, num_workers=workers)
    resumed.load_state_dict(state)
    assert all(_same(x, y) for x, y in zip(_take(resumed, n), uninterrupted[k:]))
    # a different world size may resume the same run: global batches do not depend on it
    rank1 = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0, rank=1, world_size=2)
    rank1.load_state_dict(state)
    assert torch.equal(next(iter(rank1))["input_ids"], uninterrupted[k]["input_ids"][GLOBAL // 2 :])


def test_resume_refuses_a_different_run(tokenized):
    state = build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=0).state_dict()
    for other in (
        build_loader(tokenized, "pretrain", SEQ, GLOBAL, seed=1),
        build_loader(tokenized, "anneal", SEQ, GLOBAL, seed=0),
        build_loader(tokenized, "pretrain", SEQ * 2, GLOBAL, seed=0),
    ):
        with pytest.raises(ValueError, match="does not match"):
            other.load_state_dict(state)


def test_mixture_is_exact_per_block():
    weights = {"web": 0.55, "code": 0.3, "math": 0.15}
    counts = block_counts(weights)
    assert sum(counts.values()) == BLOCK
    assert all(abs(counts[d] / BLOCK - w) < 1 / BLOCK for d, w in weights.items())
    schedule = MixtureSchedule(weights, seed=0)
    for block in range(2):
        picks = [schedule.lookup(block * BLOCK + i) for i in range(BLOCK)]
        for s, name in enumerate(schedule.names):
            mine = [k for set_index, k in picks if set_index == s]
            # each set's sequences come in order, without gaps or repeats, continuing across blocks
            assert mine == list(range(block * counts[name], (block + 1) * counts[name]))
    first = [schedule.lookup(i)[0] for i in range(64)]
    assert len(set(first)) == 3 and first != sorted(first)  # interleaved, not in runs
    with pytest.raises(ValueError, match="below"):
        block_counts({"a": 1.0, "b": 1e-9})


def test_loader_follows_mixture_weights(tokenized):
    mix = read_mixtures(tokenized)["anneal"]
    loader = build_loader(tokenized, "anneal", SEQ, GLOBAL, seed=0)
    assert loader.weights == pytest.approx(mix, abs=1 / BLOCK)
    assert set(loader.schedule.names) == {"math", "code"}


def test_each_epoch_visits_every_document_once(tokenized):
    shard_set = ShardSet.open(tokenized / "shards", "math", "train")
    stream = DocumentStream(shard_set, seed=0)
    docs = sorted(tuple(shard_set.doc_tokens(d).tolist()) for d in range(shard_set.n_docs))
    epochs = []
    for e in range(2):
        tokens = np.concatenate(stream.fragments(e * stream.epoch_tokens, stream.epoch_tokens)).tolist()
        eos = read_index(tokenized / "shards")["doc_end_id"]
        pieces, current = [], []
        for t in tokens:
            current.append(t)
            if t == eos:
                pieces.append(tuple(current))
                current = []
        assert not current and sorted(pieces) == docs
        epochs.append(pieces)
    assert epochs[0] != epochs[1]  # a fresh order each epoch
    # a window straddling the epoch boundary is the end of one epoch followed by the start of the next
    straddle = np.concatenate(stream.fragments(stream.epoch_tokens - 10, 20)).tolist()
    assert straddle == list(itertools.chain(*epochs[0]))[-10:] + list(itertools.chain(*epochs[1]))[:10]


def test_validation_batches(tokenized):
    val = ValidationBatches(tokenized, SEQ, 4)
    passes = [list(val), list(val)]
    assert len(passes[0]) == len(val) > 0 and all(_same(a, b) for a, b in zip(*passes))
    val_tokens = sum(
        ShardSet.open(tokenized / "shards", d, "val").n_tokens
        for d in read_index(tokenized / "shards")["domains"]
    )
    real = sum(int((b["input_ids"] != val.pad_id).sum()) for b in passes[0])
    assert real == val_tokens
    halves = [list(ValidationBatches(tokenized, SEQ, 4, rank=r, world_size=2)) for r in range(2)]
    assert len(halves[0]) == len(halves[1]) == len(val)
    for whole, a, b in zip(passes[0], *halves):
        assert torch.equal(whole["labels"], torch.cat([a["labels"], b["labels"]]))
    assert val.target_tokens() == sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in passes[0])
    capped = list(ValidationBatches(tokenized, SEQ, 4, max_batches=2))
    assert len(capped) == 2 and all(_same(x, y) for x, y in zip(capped, passes[0]))


def test_unknown_mixture_and_missing_sets(tokenized):
    with pytest.raises(KeyError, match="no mixture 'sft'"):
        build_loader(tokenized, "sft", SEQ, GLOBAL, seed=0)
    math = ShardSet.open(tokenized / "shards", "math")
    with pytest.raises(ValueError, match="were not given"):
        PackedMixtureLoader({"math": math}, {"math": 1.0, "code": 1.0}, SEQ, GLOBAL, seed=0)
