"""The GGUF in llama.cpp itself (llama-cpp-python): tokenization, greedy decoding, eval backend, template.

llama-cpp-python comes with the `edge` extra, which the `dev` extra (the test run's) includes.
"""

from __future__ import annotations

import pytest

from tests.export.conftest import PROMPTS, edge_model


MIXED = (
    "Question: 12+345=? Answer: 357.\n\n  def f(x):\n\treturn x**2  "
    "# ünïcödé ✓ 日本語 😀 1,000,000.25\n"
    "<|im_start|>user\nhi there<|im_end|>\n   trailing spaces   \n\n\n  x  don't I'll \u00a0nbsp ٣٤ Ⅻ"
)


def _torch(model_dir):
    from infir.export.torch_runtime import TorchModel

    return TorchModel(model_dir, "fp32", threads=1)


def _llama(path, **kw):
    from infir.export.llamacpp import LlamaCppModel

    return LlamaCppModel(path, n_ctx=512, threads=1, **kw)


def test_llama_cpp_tokenizes_like_our_tokenizer(model_factory, gguf_factory):
    """The `smollm` pre-tokenizer splits as ours does: same ids on mixed text and on corpus documents."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(model_factory("tied")))
    llama = _llama(gguf_factory("tied", "q8_0"))
    texts = [MIXED, *PROMPTS, *(t[:2000] for t in edge_model.corpus(40, seed=3)[::4])]
    for text in texts:
        assert llama.tokenize(text) == hf(text)["input_ids"], text[:80]
        assert llama.detokenize(llama.tokenize(text, special=False)) == text


@pytest.mark.parametrize("shape", ["tied", "untied", "gqa"])
def test_f16_greedy_matches_pytorch_token_for_token(model_factory, gguf_factory, shape):
    reference, llama = _torch(model_factory(shape)), _llama(gguf_factory(shape, "f16"))
    said = set()
    for prompt in PROMPTS:
        ids = reference.tokenize(prompt)
        assert llama.tokenize(prompt) == ids
        expected = reference.greedy(ids, 32, stop_at_eog=False).token_ids
        got = llama.greedy(ids, 32, stop_at_eog=False).token_ids
        assert got == expected, (prompt, reference.detokenize(expected), llama.detokenize(got))
        said |= set(expected)
    assert len(said) > 8  # the model says something, not one token over and over


@pytest.mark.parametrize("quant", ["q8_0", "q4_0"])
def test_quantized_greedy_starts_like_pytorch(model_factory, gguf_factory, quant):
    """Quantized files drift eventually; their first tokens still follow the fp32 model."""
    from infir.export.edge_bench import agreement

    reference, llama = _torch(model_factory("tied")), _llama(gguf_factory("tied", quant))
    runs = []
    for model in (reference, llama):
        runs.append(
            [
                {
                    "prompt_ids": model.tokenize(p),
                    "token_ids": model.greedy(model.tokenize(p), 32, stop_at_eog=False).token_ids,
                }
                for p in PROMPTS
            ]
        )
    result = agreement(*runs)
    print(f"{quant}: matching greedy prefix {result['matching_prefix']} of 32")
    assert result["prompt_ids_match"] and min(result["matching_prefix"]) >= 1


def test_backend_answers_eval_tasks_like_pytorch(model_factory, gguf_factory):
    from transformers import AutoTokenizer

    from infir.eval.backends import HFBackend
    from infir.eval.config import TaskSpec
    from infir.eval.runner import run_task
    from infir.export.llamacpp import LlamaCppBackend

    model_dir = model_factory("tied")
    spec = TaskSpec(name="reasoning", limit=4, max_new_tokens=24)
    hf = HFBackend.load(model_dir, "cpu", "float32")
    ours = LlamaCppBackend.load(
        gguf_factory("tied", "f16"), AutoTokenizer.from_pretrained(str(model_dir)), n_ctx=512
    )
    a = run_task(hf, spec, batch_size=1, show_progress=False)
    b = run_task(ours, spec, batch_size=1, show_progress=False)
    assert [s["output"] for s in b.samples] == [s["output"] for s in a.samples]
    assert b.metrics == {**a.metrics, "tokens_per_second": b.metrics["tokens_per_second"]}

    requests = [
        ("Question: What is 2 + 2?\nAnswer:", " 4"),
        ("Question: What is 2 + 2?\nAnswer:", " 5"),
        ("The answer is", " 12."),
    ]
    ref, got = hf.loglikelihood(requests), ours.loglikelihood(requests)
    for r, g in zip(ref, got):
        assert g.logprob == pytest.approx(r.logprob, abs=0.05) and g.greedy == r.greedy


@pytest.mark.parametrize("quant", ["f16", "q4_0"])
def test_heldout_likelihood_matches_pytorch(model_factory, gguf_factory, quant):
    reference = _torch(model_factory("gqa"))
    llama = _llama(gguf_factory("gqa", quant), logits_all=True)
    ids = reference.tokenize(PROMPTS[1] + " 3 + 4 = 7. The answer is 7.")
    ref, got = reference.mean_nll(ids), llama.mean_nll(ids)
    assert got == pytest.approx(ref, abs=0.01 if quant == "f16" else 0.15)


def test_chat_template_renders_in_llama_cpp_python(model_factory, gguf_factory):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from transformers import AutoTokenizer

    from infir.tokenize.chat import use_chat_eos

    tok = AutoTokenizer.from_pretrained(str(model_factory("tied")))
    use_chat_eos(tok)
    llama = _llama(gguf_factory("tied", "q8_0"))
    template = llama.llm.metadata["tokenizer.chat_template"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3 + 4?"}]
    rendered = Jinja2ChatFormatter(template, eos_token="<|im_end|>", bos_token="<|endoftext|>")(
        messages=messages
    )
    assert rendered.prompt == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
