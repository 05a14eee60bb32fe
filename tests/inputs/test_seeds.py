"""Recall seeds drawn through `datasets` from local files in the hub datasets' own schemas."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infir.config import Recipe
from infir.curate.config import RecallConfig, RecallSeedSource
from infir.curate.recall.domains import load_recall_seeds
from infir.inputs.config import DatasetSource, SampleSpec
from infir.inputs.sample import Reservoir, draw
from infir.run import MARKER, run_stage
from infir.stages import STAGES


def openwebmath_parquet(path: Path, n: int) -> None:
    """OpenWebMath's columns (url, text, date, metadata), written in several row groups."""
    rows = {
        "url": [f"https://math.example.org/q/{i}" for i in range(n)],
        "text": [
            f"Math page {i}. Let $x = {i}$; then $x^2 = {i * i}$ and \\frac{{x}}{{2}} = {i / 2}."
            for i in range(n)
        ],
        "date": ["2023-01-01"] * n,
        "metadata": [json.dumps({"extraction_info": {"found_math": True}})] * n,
    }
    pq.write_table(pa.table(rows), path, row_group_size=97)


def infimm_parquet(path: Path, n: int) -> None:
    """InfiMM-WebMath-40B's columns: text segments and image URLs as parallel lists, None where the other is."""
    rows = {
        "URL": [f"https://mm.example.org/{i}" for i in range(n)],
        "text_list": [
            [f"Figure page {i}: the triangle has sides $3, 4, 5$.", None, "So the area is $6$."]
            for i in range(n)
        ],
        "image_list": [[None, f"https://mm.example.org/{i}.png", None] for i in range(n)],
        "metadata": [json.dumps({"ft_lang_label": "__label__en"})] * n,
    }
    pq.write_table(pa.table(rows), path)


def stackoverflow_jsonl(path: Path, n: int) -> None:
    """StackOverflow-style Q&A rows: a title, the question body, the accepted answer; some answers empty."""
    with path.open("w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "question_id": i,
                        "title": f"How do I reverse list {i} in Python?",
                        "question_body": f"I have `xs = list(range({i}))`. What is the idiom?",
                        "answer_body": "" if i % 10 == 0 else f"Use slicing:\n\n    ys = xs[::-1]  # {i}\n",
                        "score": i % 7,
                    }
                )
                + "\n"
            )


def web_jsonl_gz(path: Path, n: int) -> None:
    """FineWeb's columns (text, id, url, dump), gzip-compressed JSONL."""
    with gzip.open(path, "wt") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "text": f"Web page {i} about gardening and local news.",
                        "id": f"w{i}",
                        "url": f"https://web.example.com/{i}",
                        "dump": "CC-MAIN-2024-10",
                    }
                )
                + "\n"
            )


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    raw = tmp_path / "raw"
    raw.mkdir()
    paths = {
        "math": raw / "owm.parquet",
        "so": raw / "so.jsonl",
        "web": raw / "web.jsonl.gz",
        "mm": raw / "infimm.parquet",
    }
    openwebmath_parquet(paths["math"], 1000)
    infimm_parquet(paths["mm"], 200)
    stackoverflow_jsonl(paths["so"], 600)
    web_jsonl_gz(paths["web"], 1500)
    return paths


def recipe_for(sources: dict[str, Path], sizes=(300, 200, 250), seed: int = 0) -> Recipe:
    qa = "{title}\n\n{question_body}\n\n{answer_body}"
    return Recipe.model_validate(
        {
            "name": "t",
            "stages": ["inputs"],
            "inputs": {
                "recall_seeds": {
                    "math": {
                        "positives": {
                            "sources": [{"paths": [str(sources["math"])]}],
                            "size": sizes[0],
                            "seed": seed,
                            "out": "seeds/math_positive.jsonl",
                        },
                        "negatives": {
                            "sources": [{"paths": [str(sources["web"])]}],
                            "size": sizes[2],
                            "seed": seed,
                            "out": "seeds/math_negative.jsonl",
                        },
                    },
                    "code": {
                        "positives": {
                            "sources": [
                                {"paths": [str(sources["so"])], "template": qa, "require": ["answer_body"]}
                            ],
                            "size": sizes[1],
                            "seed": seed,
                            "out": "seeds/stackoverflow_positive.jsonl",
                        }
                    },
                }
            },
        }
    )


def read(path: str | Path) -> list[str]:
    return [json.loads(line)["text"] for line in Path(path).read_text().splitlines()]


def test_stage_draws_seeds_in_each_schema_and_curate_reads_them(sources, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = recipe_for(sources)
    summary = run_stage(recipe, STAGES["inputs"], tmp_path / "run", log=lambda *a: None)["outputs"]
    math, code, web = (
        read("seeds/math_positive.jsonl"),
        read("seeds/stackoverflow_positive.jsonl"),
        read("seeds/math_negative.jsonl"),
    )
    assert (len(math), len(code), len(web)) == (300, 200, 250)
    assert len(set(math)) == 300 and all(t.startswith("Math page ") for t in math)
    assert all(t.startswith("Web page ") for t in web)
    # the template joined the Q&A columns; unanswered questions were skipped
    assert all("How do I reverse" in t and "xs[::-1]" in t for t in code)
    assert summary["code.positives"]["seen"] == 540 and summary["math.positives"]["seen"] == 1000
    # the sample is spread over the whole stream, not its head
    assert max(int(t.split()[2].rstrip(".")) for t in math) > 900
    # curate's recall reads these files as its seeds
    loaded = load_recall_seeds(
        RecallSeedSource(paths=["seeds/math_positive.jsonl"], limit=5000), RecallConfig()
    )
    assert len(loaded) == 300 and "\\frac" in loaded[0]
    run_dir = tmp_path / "run" / "inputs"
    assert (run_dir / MARKER).exists() and (run_dir / "config.yaml").exists()


def test_rerun_skips_and_a_resume_redraws_only_what_is_missing(sources, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = recipe_for(sources)
    run_dir = tmp_path / "run"
    run_stage(recipe, STAGES["inputs"], run_dir, log=lambda *a: None)
    before = {p: os.stat(p).st_mtime_ns for p in Path("seeds").iterdir()}
    said = []
    run_stage(recipe, STAGES["inputs"], run_dir, log=said.append)
    assert said and said[0].startswith("skipped inputs")
    # a run killed after two outputs: no marker, one file missing
    (run_dir / "inputs" / MARKER).unlink()
    Path("seeds/stackoverflow_positive.jsonl").unlink()
    out = run_stage(recipe, STAGES["inputs"], run_dir, log=lambda *a: None)["outputs"]
    assert out["math.positives"]["reused"] and out["math.negatives"]["reused"]
    assert "reused" not in out["code.positives"]
    assert os.stat("seeds/math_positive.jsonl").st_mtime_ns == before[Path("seeds/math_positive.jsonl")]
    assert len(read("seeds/stackoverflow_positive.jsonl")) == 200
    # an edited source file changes the stage's fingerprint: it reruns, and the same seed draws the same
    # sample from the unchanged files
    math_before = Path("seeds/math_positive.jsonl").read_bytes()
    stackoverflow_jsonl(sources["so"], 300)
    out = run_stage(recipe, STAGES["inputs"], run_dir, log=lambda *a: None)["outputs"]
    assert not any(o.get("reused") for o in out.values())
    assert out["code.positives"]["seen"] == 270
    assert Path("seeds/math_positive.jsonl").read_bytes() == math_before


def test_interleaved_text_lists_become_one_text(sources):
    spec = SampleSpec(
        sources=[DatasetSource(paths=[str(sources["mm"])], text_key="text_list")], size=5, out="x.jsonl"
    )
    texts, _ = draw(spec)
    assert len(texts) == 5
    assert all(t.endswith("sides $3, 4, 5$.\n\nSo the area is $6$.") and "None" not in t for t in texts)


def test_same_seed_same_sample_other_seed_other_sample(sources):
    spec = SampleSpec(sources=[DatasetSource(paths=[str(sources["math"])])], size=100, out="x.jsonl", seed=3)
    first, _ = draw(spec)
    again, _ = draw(spec)
    other, _ = draw(spec.model_copy(update={"seed": 4}))
    assert first == again and set(first) != set(other)


def test_several_sources_share_one_uniform_sample(sources):
    spec = SampleSpec(
        sources=[
            DatasetSource(paths=[str(sources["math"])]),
            DatasetSource(paths=[str(sources["web"])], scan=500),
        ],
        size=300,
        out="x.jsonl",
    )
    texts, counts = draw(spec)
    assert counts["texts_per_source"] == {str(sources["math"]): 1000, str(sources["web"]): 500}
    share = sum(t.startswith("Web") for t in texts) / len(texts)
    assert 0.22 < share < 0.45  # 500 of 1,500 records read are web: a third, +- 3 standard errors


def test_shuffled_files_spread_a_scanned_sample_over_the_dataset(tmp_path):
    parts = []
    for f in range(8):
        parts.append(tmp_path / f"part-{f}.jsonl")
        parts[-1].write_text("".join(json.dumps({"text": f"file {f} row {i}"}) + "\n" for i in range(50)))
    glob = str(tmp_path / "part-*.jsonl")

    def files_in(seed: int, shuffle: bool) -> set[str]:
        src = DatasetSource(paths=[glob], scan=100, shuffle_files=shuffle)
        texts, _ = draw(SampleSpec(sources=[src], size=100, out="x.jsonl", seed=seed))
        return {t.split()[1] for t in texts}

    assert files_in(0, False) == {"0", "1"}  # the first two files in order
    orders = {frozenset(files_in(seed, True)) for seed in range(6)}
    assert len(orders) > 1 and all(len(o) == 2 for o in orders)
    assert files_in(3, True) == files_in(3, True)


def test_reservoir_is_uniform_and_bounded():
    hits: Counter = Counter()
    for seed in range(400):
        r = Reservoir(10, seed)
        for i in range(100):
            r.add(str(i))
            assert len(r.items) <= 10
        hits.update(int(t) // 10 for t in r.sample())
    # each tenth of the stream holds a tenth of the draws (4,000 draws; sd about 19 per bin)
    assert all(300 < hits[b] < 500 for b in range(10)), hits


def test_missing_field_names_the_fields_there(sources):
    spec = SampleSpec(
        sources=[DatasetSource(paths=[str(sources["so"])], text_key="body")], size=5, out="x.jsonl"
    )
    with pytest.raises(KeyError, match="question_body"):
        draw(spec)


def test_config_refuses_a_source_with_both_name_and_paths():
    with pytest.raises(ValueError, match="exactly one"):
        DatasetSource(name="open-web-math/open-web-math", paths=["a.jsonl"])
