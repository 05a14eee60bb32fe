import json
import random

import pytest
import torch

from infir.model.llm import ModelConfig, build_model
from infir.sft.config import ConversationSource
from infir.sft.data import BadRecord, load_conversations
from infir.sft.packing import ConversationBatches, best_fit_decreasing, build_row, encode_conversation
from infir.train.objectives import token_loss_sum

CONVO = [
    {"role": "system", "content": "You are a careful math tutor."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5. The answer is 5."},
    {"role": "user", "content": "And 7 - 4?"},
    {"role": "assistant", "content": "7 - 4 = 3. The answer is 3."},
]


def test_mask_covers_exactly_the_assistant_turns_and_their_end_of_turn(chat_tokenizer):
    ex = encode_conversation(chat_tokenizer, CONVO)
    masked = [i for i, label in enumerate(ex.labels) if label != -100]
    # contiguous spans of masked positions, decoded, are exactly the assistant replies + <|im_end|>
    spans, start = [], None
    for i in range(len(ex.labels) + 1):
        inside = i < len(ex.labels) and ex.labels[i] != -100
        if inside and start is None:
            start = i
        if not inside and start is not None:
            spans.append(chat_tokenizer.decode(ex.input_ids[start:i]))
            start = None
    assert spans == ["2 + 3 = 5. The answer is 5.<|im_end|>", "7 - 4 = 3. The answer is 3.<|im_end|>"]
    assert all(ex.labels[i] == ex.input_ids[i] for i in masked)


def test_a_template_without_generation_markers_is_refused(chat_tokenizer):
    plain = chat_tokenizer.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    saved = chat_tokenizer.chat_template
    chat_tokenizer.chat_template = plain
    try:
        with pytest.raises(ValueError, match="no assistant tokens"):
            encode_conversation(chat_tokenizer, CONVO)
    finally:
        chat_tokenizer.chat_template = saved


def test_best_fit_decreasing_places_every_item_once_within_capacity():
    rng = random.Random(0)
    lengths = [rng.randint(1, 60) for _ in range(300)]
    bins = best_fit_decreasing(lengths, 64)
    placed = sorted(i for b in bins for i in b)
    assert placed == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    assert len(bins) <= -(-sum(lengths) // 64) * 1.15  # near the lower bound


def _examples(tok, n=12):
    convos = [
        [
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"{a} + {b} = {a + b}. The answer is {a + b}."},
        ]
        for a, b in zip(range(n), range(3, 3 + n))
    ]
    return [encode_conversation(tok, c) for c in convos]


def test_packed_and_unpacked_batches_give_the_same_per_conversation_loss(chat_tokenizer):
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(
            preset=None,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        ),
        tokenizer=chat_tokenizer,
    )
    model.eval()
    examples = _examples(chat_tokenizer)
    pad = chat_tokenizer.pad_token_id
    packed = ConversationBatches(examples, 128, 1, seed=0, pad_id=pad, packing=True)
    assert len(packed.rows) < len(examples)
    with torch.no_grad():
        single = {}
        for i, ex in enumerate(examples):
            ids = torch.tensor([ex.input_ids])
            logits = model(input_ids=ids, use_cache=False).logits
            single[i] = token_loss_sum(logits, torch.tensor([ex.labels])).item()
        for r, row in enumerate(packed.rows):
            built = build_row([examples[i] for i in row], 128, pad)
            ids = torch.tensor([built["input_ids"]])
            logits = model(
                input_ids=ids, position_ids=torch.tensor([built["position_ids"]]), use_cache=False
            ).logits
            offset = 0
            for i in row:
                n = len(examples[i].input_ids)
                labels = torch.full((1, 128), -100)
                labels[0, offset : offset + n] = torch.tensor(examples[i].labels)
                assert token_loss_sum(logits, labels).item() == pytest.approx(single[i], rel=1e-4, abs=1e-4)
                offset += n


def test_batches_are_the_same_for_one_or_two_ranks_and_resume_exactly(chat_tokenizer):
    examples = _examples(chat_tokenizer, 40)
    pad = chat_tokenizer.pad_token_id
    one = ConversationBatches(examples, 64, 4, seed=3, pad_id=pad)
    r0 = ConversationBatches(examples, 64, 4, seed=3, pad_id=pad, rank=0, world_size=2)
    r1 = ConversationBatches(examples, 64, 4, seed=3, pad_id=pad, rank=1, world_size=2)
    for step in range(6):  # crosses an epoch boundary
        full = one.batch_at(step)["input_ids"]
        assert torch.equal(full, torch.cat([r0.batch_at(step)["input_ids"], r1.batch_at(step)["input_ids"]]))
    it = iter(one)
    [next(it) for _ in range(3)]
    state = one.state_dict()
    expected = [next(it)["input_ids"] for _ in range(3)]
    fresh = ConversationBatches(examples, 64, 4, seed=3, pad_id=pad)
    fresh.load_state_dict(state)
    it2 = iter(fresh)
    assert all(torch.equal(next(it2)["input_ids"], e) for e in expected)


def test_padding_share_is_lower_with_packing_for_mixed_lengths(chat_tokenizer):
    rng = random.Random(0)
    convos = [
        [
            {"role": "user", "content": "Sum: " + " + ".join(str(rng.randint(1, 9)) for _ in range(n))},
            {
                "role": "assistant",
                "content": "Adding step by step. " * rng.randint(1, 6) + "The answer is 1.",
            },
        ]
        for n in [rng.randint(1, 12) for _ in range(48)]
    ]
    examples = [encode_conversation(chat_tokenizer, c) for c in convos]
    pad = chat_tokenizer.pad_token_id
    packed = ConversationBatches(examples, 128, 4, seed=0, pad_id=pad, packing=True).padding_share()
    unpacked = ConversationBatches(examples, 128, 4, seed=0, pad_id=pad, packing=False).padding_share()
    assert 0 <= packed < 0.2 and packed < unpacked + 1e-9


def test_bad_records_fail_with_file_and_record_number(tmp_path):
    path = tmp_path / "c.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}),
        json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    src = ConversationSource(type="jsonl", path=str(path))
    with pytest.raises(BadRecord, match=rf"{path}:2: not_json"):
        load_conversations([src], "fail")
    convos, report = load_conversations([src], "drop")
    assert report.kept == 2 and len(convos) == 2
    assert report.dropped == {"not_json": 1, "unknown_role": 1, "no_assistant_turn": 1, "empty_content": 1}
    assert convos[1] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_generated_source_and_system_prompt():
    src = ConversationSource(
        type="generated", families=["chain_sum"], per_family=5, system_prompt="Be brief."
    )
    convos, report = load_conversations([src])
    assert report.kept == 5
    assert convos[0][0] == {"role": "system", "content": "Be brief."}
    assert convos[0][2]["content"].rstrip().endswith(".") and "The answer is" in convos[0][2]["content"]
