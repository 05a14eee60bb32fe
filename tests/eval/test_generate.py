"""The batched generator and log-likelihood scorer agree with plain transformers computations."""

from __future__ import annotations

import pytest
import torch

from infir.eval.generate import Generator, StopChecker
from infir.eval.loglik import encode_pair, loglikelihood

PROMPTS = [
    "Question: 3 + 4 =\nAnswer:",
    "Question: what is 12 - 5?\nAnswer:",
    "Q",
    "Question: Solve x + 3 = 9 for x, a longer prompt than the others\nAnswer:",
    "Answer: 7 * 8 =",
]


@pytest.fixture(scope="module")
def gen(tiny_model_dir):
    return Generator.from_pretrained(tiny_model_dir, device="cpu")


def _reference(gen, prompt, max_new_tokens):
    ids = gen.tokenizer(prompt, return_tensors="pt")
    out = gen.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=gen.pad_id)
    return out[0, ids["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_greedy_matches_unbatched_hf_generate(gen, batch_size):
    outs = gen.generate(PROMPTS, max_new_tokens=24, batch_size=batch_size, return_token_ids=True)
    for prompt, out in zip(PROMPTS, outs):
        ref = _reference(gen, prompt, 24)
        assert out.token_ids == ref[: len(out.token_ids)]
        assert out.finish_reason in ("length", "eos")
        assert out.new_tokens == len(out.token_ids)


def test_stop_strings_cut_the_text_and_end_rows_early(gen):
    free = gen.generate(PROMPTS, max_new_tokens=30, batch_size=5)
    # Pick a stop string each free-running output contains after its first few characters.
    stop = [o.text[5:7] for o in free if len(o.text) > 8]
    outs = gen.generate(PROMPTS, max_new_tokens=30, batch_size=5, stop=stop)
    for f, o in zip(free, outs):
        if any(s in f.text for s in stop):
            assert o.finish_reason == "stop"
            assert not any(s in o.text for s in stop)
            assert f.text.startswith(o.text)


def test_stop_checker_window_catches_multi_token_stops(gen):
    checker = StopChecker(gen.tokenizer, ["\n\nQuestion:"])
    ids = gen.tokenizer("The answer is 7.\n\nQuestion:", add_special_tokens=False)["input_ids"]
    assert checker.hit(ids) and not checker.hit(ids[:-1])
    assert checker.cut("The answer is 7.\n\nQuestion: next") == "The answer is 7."


def test_sampling_is_seeded_and_num_samples_are_adjacent(gen):
    a = gen.generate(PROMPTS[:2], max_new_tokens=12, temperature=1.0, top_p=0.9, num_samples=3, seed=7)
    b = gen.generate(PROMPTS[:2], max_new_tokens=12, temperature=1.0, top_p=0.9, num_samples=3, seed=7)
    assert [x.text for x in a] == [x.text for x in b] and len(a) == 6
    assert len({x.text for x in a[:3]}) > 1  # different samples of one prompt


def test_eos_ends_a_row(gen):
    eos = gen.tokenizer.eos_token_id
    with torch.no_grad():  # force the EOS token to win everywhere
        gen.model.lm_head.bias = torch.nn.Parameter(torch.zeros(gen.model.config.vocab_size))
        gen.model.lm_head.bias[eos] = 1e4
    try:
        outs = gen.generate(PROMPTS[:2], max_new_tokens=10)
    finally:
        gen.model.lm_head.bias = None
    assert all(o.finish_reason == "eos" and o.text == "" for o in outs)


def test_loglikelihood_matches_a_direct_forward(gen):
    requests = [
        ("Question: 3 + 4 =\nAnswer:", " 7"),
        ("Question: 3 + 4 =\nAnswer:", " 8"),
        ("Question: 3 + 4 =\nAnswer:", " seven, I think"),
        ("Q", "uestion: 1 + 1"),
    ]
    scored = loglikelihood(gen.model, gen.tokenizer, requests, batch_size=3)
    for (context, continuation), s in zip(requests, scored):
        ctx, cont = encode_pair(gen.tokenizer, context, continuation)
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logprobs = torch.log_softmax(gen.model(ids).logits[0].float(), -1)
        expected = sum(logprobs[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
        assert s.logprob == pytest.approx(expected, abs=1e-4)


def test_continuous_batching_matches_one_prompt_at_a_time(gen):
    from infir.data.reasoning import generate as problems

    prompts = [f"Question: {p.question}\nAnswer:" for p in problems("chain_sum", 14, seed=5)]
    prompts += ["Q", "Answer: 1"]  # very short prompts join batches whose caches are much wider
    free = gen.generate(prompts, max_new_tokens=20, batch_size=1)
    stop = sorted({o.text[3:5] for o in free if len(o.text) > 6})[:4]  # rows stop at different steps
    outs = gen.generate(prompts, max_new_tokens=20, batch_size=4, stop=stop, return_token_ids=True)
    assert {o.finish_reason for o in outs} >= {"stop", "length"}
    for prompt, out in zip(prompts, outs):
        ref = _reference(gen, prompt, 20)
        assert out.token_ids == ref[: len(out.token_ids)]
        text = gen.tokenizer.decode(ref, skip_special_tokens=True)
        cut = min([i for i in (text.find(s) for s in stop) if i >= 0], default=len(text))
        assert out.text == text[:cut]


class _LegacyCacheModel(torch.nn.Module):
    """A causal LM whose forward takes the KV cache as `past_key_values` (transformers before the
    rename to `cache`) and swallows unknown keywords, as those versions' models do."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config
        self.generation_config = inner.generation_config

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        use_cache=None,
        logits_to_keep=0,
        **ignored,
    ):
        return self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=past_key_values,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
        )


def test_a_model_taking_past_key_values_decodes_with_its_cache(gen):
    from infir.eval.batching import cache_kwarg

    legacy = Generator(_LegacyCacheModel(gen.model), gen.tokenizer)
    assert cache_kwarg(gen.model) == "cache" and cache_kwarg(legacy.model) == "past_key_values"
    want = gen.generate(PROMPTS, max_new_tokens=16, batch_size=2, return_token_ids=True)
    got = legacy.generate(PROMPTS, max_new_tokens=16, batch_size=2, return_token_ids=True)
    assert [o.token_ids for o in got] == [o.token_ids for o in want]
