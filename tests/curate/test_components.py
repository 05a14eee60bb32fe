"""The fast parts against what they replace, and the recall / quality building blocks."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from infir.curate.config import DecontamConfig, QualityConfig
from infir.curate.filters.decontam import short_text_is_specific
from infir.curate.recall.classifier import normalize
from infir.curate.filters.rules import is_program, letter_count, top_bigram_char_fraction
from infir.curate.dedup.hashing import ngram_accumulators, ngram_hashes, word_hashes, word_hashes_many, words

TEXTS = [
    "The quick brown fox jumps over the lazy dog. It's 3.5 km away — “really”.",
    "Der schnelle braune Fuchs springt über den faulen Hund, und die Katze schläft im Garten.",
    "Le renard brun rapide saute par-dessus le chien paresseux pendant que le chat dort.",
    "El rápido zorro marrón salta sobre el perro perezoso mientras el gato duerme tranquilo.",
    "Быстрая коричневая лиса прыгает через ленивую собаку, а кошка спит в саду.",
    "敏捷的棕色狐狸跳过了懒狗。猫在花园里睡觉。",
    "",
    "ALL CAPS HEADLINE ABOUT THE WEATHER TODAY",
]


def test_batched_langid_matches_py3langid():
    import py3langid.langid as py3langid
    from infir.curate.filters.langid_batch import BatchLangId

    theirs = py3langid.LanguageIdentifier.from_model_file(py3langid.MODEL_FILE, norm_probs=True)
    ours = BatchLangId().classify(TEXTS)
    for text, (lang, prob) in zip(TEXTS, ours):
        expected_lang, expected_prob = theirs.classify(text)
        assert lang == expected_lang and prob == pytest.approx(expected_prob, abs=1e-4), text


def test_word_hashes_fold_case_and_punctuation():
    a, b = word_hashes("Hello, World! hello"), word_hashes("hello world   HELLO")
    assert (a == b).all() and a[0] == a[2]
    assert words("Don’t stop—now: x_1 = 2.5") == ["don", "t", "stop", "now", "x", "1", "2", "5"]
    many = word_hashes_many(TEXTS)
    assert all((m == word_hashes(t)).all() for m, t in zip(many, TEXTS))
    assert len(many[6]) == 0


def test_ngram_accumulators_give_ngram_hashes():
    hashes = word_hashes(TEXTS[0])
    for k, acc in ngram_accumulators(hashes, [6]):
        assert (acc ^ (acc >> np.uint64(29)) == ngram_hashes(hashes, k)).all()


def test_letter_count_and_top_bigram_match_their_plain_definitions():
    for text in TEXTS + ["x²½ 𝔘𝔫𝔦 😀 abc_def 123 ٣"]:
        assert letter_count(text) == len(re.sub(r"[\W\d_]+", "", text))
    words_ = "to be or not to be that is to be".split()
    assert top_bigram_char_fraction(words_, 40) == pytest.approx(5 * 3 / 40)  # "to be" three times


def test_program_means_parses_or_keeps_a_file_layout():
    assert is_program("import os\nx = os.sep\n", lambda: True)
    flattened = "import mmap # write a file with open('a', 'wb') as f: f.write(b'x') print(mm[:5])"
    assert not is_program(flattened, lambda: False)
    assert is_program("int main() {\n\n  return 0;\n\n}\n", lambda: False)  # layout of a source file


def test_normalize_reads_windows_over_long_documents():
    text = '"""' + "docstring words " * 400 + '"""\n' + "def f(x):\n    return x + 1\n" * 50
    head = normalize(text, 64)
    spread = normalize(text, 64, windows=4)
    assert "def" not in head.split() and "def" in spread.split() and "<cut>" in spread
    assert len(spread.split()) <= 64 + 3


def test_bootstrap_quality_model_separates_text_from_word_salad(tmp_path):
    from infir.curate.filters.quality import score_texts, shuffled, train_quality_model
    from infir.curate.config import RecallConfig
    from infir.data.builtin import iter_builtin

    texts = [normalize(d["text"], 256, 4) for d in iter_builtin("python_docs", max_docs=300)]
    report = train_quality_model(
        QualityConfig(bootstrap_docs=200), RecallConfig(), texts[:200], 0, tmp_path / "q.bin"
    )
    assert report["examples"] == 400
    rng = random.Random(1)
    held_out = texts[200:]
    ordered = score_texts(tmp_path / "q.bin", held_out)
    salad = score_texts(tmp_path / "q.bin", [shuffled(t, rng) for t in held_out])
    assert np.median(ordered) > 0.8 and np.median(salad) < 0.2
    assert (ordered > 0.1).mean() > 0.95


def test_short_benchmark_texts_count_only_when_specific():
    cfg = DecontamConfig()
    assert short_text_is_specific("Simplify $\\sqrt{242}$.", 3, cfg.short_min_words)
    assert short_text_is_specific(
        "Genes are exchanged with other populations of the species.", 9, cfg.short_min_words
    )
    assert not short_text_is_specific("8 - 3 = 5. The answer is 5.", 7, cfg.short_min_words)
    assert not short_text_is_specific("Inositol triphosphate", 2, cfg.short_min_words)
    assert not short_text_is_specific("\\frac{1}{2}", 3, cfg.short_min_words)
