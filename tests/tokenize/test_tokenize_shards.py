"""Token shards: content, index, dtype, validation split, workers, resume, corrupt input and shards."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from infir.tokenize import pipeline
from infir.tokenize.config import ENDOFTEXT
from infir.tokenize.shards import ShardError, ShardSet, dtype_for_vocab, read_index
from infir.tokenize.sources import InputError
from infir.tokenize.stage import tokenize_corpus

QUIET = {"log": lambda *_: None, "progress": False}


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "_jobs" not in p.parts
    }


def test_dtype_by_vocabulary():
    assert dtype_for_vocab(8192) == np.uint16 and dtype_for_vocab(65536) == np.uint16
    assert dtype_for_vocab(65537) == np.uint32 and dtype_for_vocab(128256) == np.uint32
    with pytest.raises(ValueError, match="cannot hold"):
        dtype_for_vocab(70000, "uint16")


def test_shards_hold_every_document_exactly(tokenized, corpus_docs):
    tok = AutoTokenizer.from_pretrained(tokenized / "tokenizer")
    eos = tok.convert_tokens_to_ids(ENDOFTEXT)
    index = read_index(tokenized / "shards")
    assert index["dtype"] == "uint16" and index["doc_end_id"] == eos
    # Input order within a domain: file 0's documents, then file 1's (jobs sort by file, then part).
    expected: dict[str, list[str]] = {}
    for k in range(2):
        for doc in corpus_docs[k::2]:
            if doc["text"]:
                expected.setdefault(doc["metadata"]["domain"], []).append(doc["text"])
    assert sorted(index["domains"]) == sorted(expected) == ["code", "math", "web"]
    for domain, texts in expected.items():
        shard_set = ShardSet.open(tokenized / "shards", domain, "all")
        assert shard_set.n_docs == len(texts) == index["domains"][domain]["docs"]
        assert shard_set.n_tokens == index["domains"][domain]["tokens"]
        for d, text in enumerate(texts):
            ids = shard_set.doc_tokens(d).tolist()
            assert ids[-1] == eos and eos not in ids[:-1]  # one end-of-text per document, at its end
            assert tok.decode(ids[:-1]) == text
    assert len(index["domains"]["code"]["shards"]) > 1  # the small shard size did split the input


def test_literal_special_text_is_not_a_boundary(tokenized):
    tok = AutoTokenizer.from_pretrained(tokenized / "tokenizer")
    web = ShardSet.open(tokenized / "shards", "web", "all")
    docs = [web.doc_tokens(d).tolist() for d in range(web.n_docs)]
    literal = [ids for ids in docs if "Literal special text" in tok.decode(ids)]
    assert len(literal) == 1
    assert literal[0].count(tok.convert_tokens_to_ids(ENDOFTEXT)) == 1  # only the real document end
    assert "<|endoftext|> and <|im_start|>" in tok.decode(literal[0][:-1])


def test_validation_split(tokenized):
    summary_domains = read_index(tokenized / "shards")["domains"]
    for domain in summary_domains:
        train = ShardSet.open(tokenized / "shards", domain, "train")
        val = ShardSet.open(tokenized / "shards", domain, "val")
        every = ShardSet.open(tokenized / "shards", domain, "all")
        assert val.n_docs >= 3 and train.n_docs + val.n_docs == every.n_docs
        assert train.n_tokens + val.n_tokens == every.n_tokens
        train_docs = set(zip(train.doc_shard.tolist(), train.doc_start.tolist()))
        val_docs = set(zip(val.doc_shard.tolist(), val.doc_start.tolist()))
        assert not train_docs & val_docs


def test_workers_and_resume_give_identical_shards(tmp_path, curated, tokenized, small_configs):
    tok_cfg, cfg = small_configs
    parallel = tmp_path / "parallel"
    summary = tokenize_corpus(
        curated / "kept",
        parallel,
        tok_cfg,
        cfg.model_copy(update={"workers": 2}),
        curated / "mixtures.json",
        **QUIET,
    )
    assert _tree_bytes(parallel / "shards") == _tree_bytes(tokenized / "shards")
    assert summary["sharding"]["jobs_reused"] == 0

    # Resume: a job whose done file is gone is redone, the others are reused; the result is identical.
    jobs = sorted((parallel / "shards" / pipeline.JOBS_DIR).glob("*.json"))
    jobs[1].unlink()
    # ... and so is a job whose shard was damaged after it finished
    damaged = json.loads(jobs[2].read_text())
    domain, meta = next(iter(damaged["shards"].items()))
    (parallel / "shards" / domain / f"{meta['name']}.bin").write_bytes(b"")
    again = tokenize_corpus(curated / "kept", parallel, tok_cfg, cfg, curated / "mixtures.json", **QUIET)
    assert again["sharding"]["jobs_reused"] == len(jobs) - 2
    assert _tree_bytes(parallel / "shards") == _tree_bytes(tokenized / "shards")
    assert again["domains"] == summary["domains"]


def test_interrupted_run_resumes(tmp_path, curated, tokenized, small_configs, monkeypatch):
    tok_cfg, cfg = small_configs
    out = tmp_path / "killed"
    real_write, calls = pipeline.ShardingRun._write, [0]

    def dying_write(self, chunk, flat, lengths):
        calls[0] += 1
        if calls[0] == 7:
            raise KeyboardInterrupt("killed mid-run")
        real_write(self, chunk, flat, lengths)

    monkeypatch.setattr(pipeline.ShardingRun, "_write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        tokenize_corpus(curated / "kept", out, tok_cfg, cfg, curated / "mixtures.json", **QUIET)
    finished = len(list((out / "shards" / pipeline.JOBS_DIR).glob("*.json")))
    assert finished >= 1
    monkeypatch.setattr(pipeline.ShardingRun, "_write", real_write)
    summary = tokenize_corpus(curated / "kept", out, tok_cfg, cfg, curated / "mixtures.json", **QUIET)
    assert summary["sharding"]["jobs_reused"] == finished
    assert summary["tokenizer"]["source"] == "trained"
    assert _tree_bytes(out / "shards") == _tree_bytes(tokenized / "shards")
    assert not list(out.rglob("*.tmp-*"))


def test_truncated_shard_fails_with_its_path(tmp_path, tokenized):
    shards = tmp_path / "shards"
    shutil.copytree(tokenized / "shards", shards)
    victim = shards / "code" / f"{read_index(shards)['domains']['code']['shards'][0]['name']}.bin"
    victim.write_bytes(victim.read_bytes()[:-6])
    with pytest.raises(ShardError, match=str(victim)) as err:
        ShardSet.open(shards, "code")
    assert "truncated" in str(err.value)


def test_corrupt_shard_fails_with_its_path(tmp_path, tokenized):
    shards = tmp_path / "shards"
    shutil.copytree(tokenized / "shards", shards)
    victim = shards / "math" / f"{read_index(shards)['domains']['math']['shards'][0]['name']}.bin"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=f"{victim}: corrupt shard: checksum"):
        ShardSet.open(shards, "math")
    ShardSet.open(shards, "math", verify=False)  # structure is intact; only the checksum catches this

    idx = victim.with_name(victim.name.replace(".bin", ".idx.npy"))
    offsets = np.load(idx)
    offsets[1], offsets[2] = offsets[2], offsets[1]
    np.save(idx, offsets)
    with pytest.raises(ShardError, match=f"{victim}: corrupt document index"):
        ShardSet.open(shards, "math", verify=False)
    victim.unlink()
    with pytest.raises(ShardError, match=f"{victim}: shard file is missing"):
        ShardSet.open(shards, "math")


def test_bad_input_names_file_and_line(tmp_path, small_configs):
    tok_cfg, cfg = small_configs
    kept = tmp_path / "kept"
    kept.mkdir()
    bad = kept / "00000.jsonl"
    bad.write_text(json.dumps({"id": "a", "text": "fine " * 500}) + "\n" + "{not json\n")
    with pytest.raises(InputError, match=f"{bad}:2: not valid JSON"):
        tokenize_corpus(kept, tmp_path / "out", tok_cfg, cfg, **QUIET)
    good = json.dumps({"id": "a", "text": "fine " * 500})
    bad.write_text(good + "\n" + json.dumps({"id": "b", "txt": "x"}) + "\n")
    with pytest.raises(InputError, match=f"{bad}:2: field 'text'"):
        tokenize_corpus(kept, tmp_path / "out2", tok_cfg, cfg, **QUIET)
    bad.unlink()
    broken = kept / "00001.jsonl.gz"
    lines = "".join(
        json.dumps({"id": str(i), "text": f"document {i} " * (i % 7 + 1)}) + "\n" for i in range(2000)
    )
    whole = gzip.compress(lines.encode())
    broken.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=str(broken)):
        tokenize_corpus(kept, tmp_path / "out3", tok_cfg, cfg, **QUIET)


def test_parquet_input_and_loaded_tokenizer(tmp_path, corpus_docs, shared, small_configs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, cfg = small_configs
    kept = tmp_path / "kept"
    kept.mkdir()
    docs = [d for d in corpus_docs if d["text"]][:40]
    table = pa.table(
        {
            "id": [d["id"] for d in docs],
            "text": [d["text"] for d in docs],
            "metadata": [json.dumps(d["metadata"]) for d in docs],
        }
    )
    pq.write_table(table, kept / "part-0.parquet", row_group_size=7)
    from infir.tokenize.config import TokenizerConfig

    llama = TokenizerConfig(path_or_name=str(shared / "tokenizers" / "llama-test-tokenizer.json"))
    summary = tokenize_corpus(kept, tmp_path / "out", llama, cfg, **QUIET)
    assert summary["tokenizer"]["source"] == "loaded" and summary["tokenizer"]["document_end"] == "</s>"
    assert sum(d["docs"] for d in summary["domains"].values()) == len(docs)
    tok = AutoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer")
    assert len(tok) == 32003
    first_domain = docs[0]["metadata"]["domain"]
    ids = ShardSet.open(tmp_path / "out" / "shards", first_domain, "all").doc_tokens(0).tolist()
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id  # Llama framing: <s> ... </s>
    assert tok.decode(ids[1:-1]) == docs[0]["text"]


def test_validation_size_bounds(tmp_path, tokenized):
    shards = tmp_path / "shards"
    shutil.copytree(tokenized / "shards", shards)
    docs = {d: e["docs"] for d, e in read_index(shards)["domains"].items()}
    capped = pipeline.select_validation(shards, fraction=0.5, min_docs=0, max_docs=2)
    assert {d: v["docs"] for d, v in capped.items()} == {d: 2 for d in docs}
    assert all(ShardSet.open(shards, d, "val").n_docs == 2 for d in docs)
    none = pipeline.select_validation(shards, fraction=0.0, min_docs=0, max_docs=100)
    assert all(v["docs"] == 0 for v in none.values())
    half = pipeline.select_validation(shards, fraction=0.9, min_docs=0, max_docs=10_000)
    assert {d: v["docs"] for d, v in half.items()} == {d: n // 2 for d, n in docs.items()}
    # the held-out set grows by adding documents, never by swapping: smaller sets are subsets
    pipeline.select_validation(shards, fraction=0.0, min_docs=2, max_docs=100)
    two = {d: set(np.load(shards / d / "val_docs.npy").tolist()) for d in docs}
    pipeline.select_validation(shards, fraction=0.0, min_docs=4, max_docs=100)
    four = {d: set(np.load(shards / d / "val_docs.npy").tolist()) for d in docs}
    assert all(len(four[d]) == 4 and two[d] < four[d] for d in docs)
