"""SFT conversations encoded and packed once, on disk, the same whatever the number of ranks that encode them."""

import random

import numpy as np
import pytest

from infir.sft import encoded
from infir.sft.packing import ConversationBatches, best_fit_decreasing, encode_all, encode_conversation


def conversations(n: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        steps = " ".join(f"step {k}: {a} + {k} = {a + k}." for k in range(rng.randint(0, 12)))
        out.append(
            [
                {"role": "user", "content": f"#{i}: what is {a} + {b}?"},
                {"role": "assistant", "content": f"{steps} The answer is {a + b}."},
            ]
        )
    return out


def build(folder, tok, convos, world: int, max_tokens: int = 120, seq_len: int = 160):
    """What `encoded.build` does on `world` ranks, with the ranks taking turns in one process."""
    for rank in range(world):
        encoded.encode_part(folder, tok, iter(convos), max_tokens, rank, world, flush_tokens=200)
    encoded.join_parts(folder, world, seq_len, True, {"load": {"kept": len(convos), "dropped": {}}})
    return encoded.EncodedConversations(folder)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_encoded_on_any_number_of_ranks_equals_encoding_in_memory(tmp_path, chat_tokenizer, world):
    convos = conversations(40)
    examples, too_long = encode_all(chat_tokenizer, convos, 120)
    assert too_long["too_long"] > 0  # some are dropped, and their places must not shift the others
    store = build(tmp_path / "enc", chat_tokenizer, convos, world)
    assert len(store) == len(examples)
    for i, ex in enumerate(examples):
        assert store[i] == ex, i
    assert store.meta["too_long"] == dict(too_long)
    assert store.rows() == best_fit_decreasing([len(e.input_ids) for e in examples], 160)
    assert not list((tmp_path / "enc").glob("part-*")) and encoded.is_built(tmp_path / "enc")


def test_batches_from_the_store_equal_batches_from_the_examples(tmp_path, chat_tokenizer):
    convos = conversations(30, seed=1)
    examples, _ = encode_all(chat_tokenizer, convos, 120)
    store = build(tmp_path / "enc", chat_tokenizer, convos, 2)
    pad = chat_tokenizer.pad_token_id
    mem = ConversationBatches(examples, 160, 4, seed=5, pad_id=pad)
    disk = ConversationBatches(store, 160, 4, seed=5, pad_id=pad, rows=store.rows())
    assert disk.padding_share() == mem.padding_share()
    for step in range(6):
        a, b = mem.batch_at(step), disk.batch_at(step)
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a), step


def test_best_fit_decreasing_matches_the_sorted_list_version():
    def reference(lengths, capacity):  # the textbook version: every bin in one sorted list
        import bisect

        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
        bins, free = [], []
        for i in order:
            k = bisect.bisect_left(free, (lengths[i], -1))
            if k < len(free):
                remaining, b = free.pop(k)
                bins[b].append(i)
                bisect.insort(free, (remaining - lengths[i], b))
            else:
                bins.append([i])
                bisect.insort(free, (capacity - lengths[i], len(bins) - 1))
        return bins

    for seed in range(20):
        rng = random.Random(seed)
        capacity = rng.choice([8, 64, 512])
        lengths = [rng.randint(1, capacity) for _ in range(rng.randint(0, 2000))]
        assert best_fit_decreasing(lengths, capacity) == reference(lengths, capacity), seed


def test_the_encoded_example_keeps_the_assistant_mask(tmp_path, chat_tokenizer):
    convos = conversations(3)
    store = build(tmp_path / "enc", chat_tokenizer, convos, 1, max_tokens=10_000, seq_len=10_000)
    ex = encode_conversation(chat_tokenizer, convos[2])
    assert (
        store[2].labels == ex.labels
        and any(t == -100 for t in ex.labels)
        and any(t != -100 for t in ex.labels)
    )
