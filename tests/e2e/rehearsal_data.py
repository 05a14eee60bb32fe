"""The inputs `recipes/infir-1b-rehearsal.yaml` reads, built in the schemas of the datasets `infir-1b.yaml`
names, from the reference corpus and benchmarks in ../shared.

  rehearsal/fineweb-edu/            parquet: text, id, dump, url, file_path, language, language_score,
                                    token_count, score, int_score (HuggingFaceFW/fineweb-edu)
  rehearsal/open-web-math/          parquet: url, text, date, metadata (open-web-math/open-web-math)
  rehearsal/starcoderdata-python/   parquet: max_stars_repo_path, max_stars_repo_name, max_stars_count, id,
                                    content (bigcode/starcoderdata)
  rehearsal/smoltalk/               parquet: messages [{role, content}], source (HuggingFaceTB/smoltalk)
  rehearsal/openr1-math/            parquet: problem, solution, answer, problem_type, question_type, source,
                                    messages (open-r1/OpenR1-Math-220k)
  rehearsal/stackoverflow-python/   parquet: title, question_body, answer_body (koutch/stackoverflow_python)
  rehearsal/benchmarks/             gsm8k, math500, mmlu_stem (copies of ../shared) and mbpp (its schema)
  rehearsal/llama-3.2-tiny/         a Llama-3.2-shaped model (grouped-query attention, llama3 RoPE scaling,
                                    tied embeddings) at tiny width, with a byte-level BPE tokenizer split by
                                    Llama 3's pattern
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

LLAMA3_PATTERN = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


def _corpus(shared: Path) -> dict[str, list[dict]]:
    labels = {}
    with gzip.open(shared / "corpus" / "refcorpus.labels.jsonl.gz", "rt") as f:
        for line in f:
            rec = json.loads(line)
            labels[rec["id"]] = rec
    by_domain: dict[str, list[dict]] = {"web": [], "math": [], "code": []}
    with gzip.open(shared / "corpus" / "refcorpus.jsonl.gz", "rt") as f:
        for line in f:
            doc = json.loads(line)
            label = labels.get(doc["id"], {})
            domain = label.get("domain")
            if domain in by_domain and label.get("kind", "clean") == "clean":
                by_domain[domain].append(doc)
    return by_domain


def _parquet(folder: Path, rows: list[dict], files: int = 2) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    for k in range(files):
        part = rows[k::files]
        pq.write_table(pa.Table.from_pylist(part), folder / f"train-{k:05d}-of-{files:05d}.parquet")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def build(root: Path, shared: Path, docs_per_domain: int = 120) -> Path:
    """Write everything under `root/rehearsal`; returns `root`."""
    base = root / "rehearsal"
    corpus = _corpus(shared)
    web, math, code = (corpus[d][:docs_per_domain] for d in ("web", "math", "code"))
    _parquet(
        base / "fineweb-edu",
        [
            {
                "text": d["text"],
                "id": f"<urn:uuid:{d['id']}>",
                "dump": "CC-MAIN-2024-10",
                "url": d.get("url") or "",
                "file_path": "s3://commoncrawl/x.warc.gz",
                "language": "en",
                "language_score": 0.95,
                "token_count": len(d["text"].split()),
                "score": 3.1,
                "int_score": 3,
            }
            for d in web
        ],
    )
    _parquet(
        base / "open-web-math",
        [
            {"url": d.get("url") or "", "text": d["text"], "date": "2023-01-01", "metadata": "{}"}
            for d in math
        ],
    )
    _parquet(
        base / "starcoderdata-python",
        [
            {
                "max_stars_repo_path": f"src/m{i}.py",
                "max_stars_repo_name": "org/repo",
                "max_stars_count": 3,
                "id": str(i),
                "content": d["text"],
            }
            for i, d in enumerate(code)
        ],
    )

    gsm8k = [
        json.loads(x)
        for x in (shared / "benchmarks" / "gsm8k" / "train.jsonl").read_text().splitlines()[:160]
    ]
    _parquet(
        base / "smoltalk",
        [
            {
                "messages": [
                    {"role": "user", "content": q["question"]},
                    {"role": "assistant", "content": q["answer"]},
                ],
                "source": "rehearsal",
            }
            for q in gsm8k[:80]
        ],
    )
    _parquet(
        base / "openr1-math",
        [
            {
                "problem": q["question"],
                "solution": q["answer"],
                "answer": q["answer"].rsplit("####", 1)[-1].strip(),
                "problem_type": "Algebra",
                "question_type": "math-word-problem",
                "source": "rehearsal",
                "messages": [
                    {"role": "user", "content": q["question"]},
                    {"role": "assistant", "content": q["answer"]},
                ],
            }
            for q in gsm8k[80:]
        ],
    )

    _parquet(
        base / "stackoverflow-python",
        [
            {
                "title": f"How do I use {d['text'].split()[1] if len(d['text'].split()) > 1 else 'this'}?",
                "question_body": "I tried this and it fails.",
                "answer_body": d["text"],
            }
            for d in corpus["code"][-150:]
        ],
    )

    bench = base / "benchmarks"
    for name in ("gsm8k", "math500", "mmlu_stem"):
        shutil.copytree(shared / "benchmarks" / name, bench / name)
    _jsonl(
        bench / "mbpp" / "test.jsonl",
        [
            {
                "task_id": 11 + i,
                "text": f"Write a function to add {i} to a number.",
                "code": f"def add_{i}(x):\n    return x + {i}",
                "test_list": [f"assert add_{i}(1) == {1 + i}"],
                "test_setup_code": "",
                "challenge_test_list": [],
            }
            for i in range(6)
        ],
    )
    _jsonl(
        bench / "mbpp" / "prompt.jsonl",
        [
            {
                "task_id": 2 + i,
                "text": f"Write a function to double {i}.",
                "code": f"def double_{i}():\n    return {2 * i}",
                "test_list": [f"assert double_{i}() == {2 * i}"],
                "test_setup_code": "",
                "challenge_test_list": [],
            }
            for i in range(3)
        ],
    )
    build_model(base / "llama-3.2-tiny", [d["text"] for d in web + math + code])
    return root


def build_model(out: Path, texts: list[str]) -> Path:
    """A Llama-3.2-shaped model at tiny width with a Llama-3-style tokenizer, saved as a Hugging Face folder."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=1024, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 256,
        },
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    return out
