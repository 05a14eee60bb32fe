"""py3langid's model, run on many documents at once.

py3langid walks a byte-level automaton one byte at a time in Python (about 2 ms for 1,000
characters), which made language id the slowest step of the scan. The walk is sequential within
a document but independent across documents, so here one numpy step advances the automata of a
whole batch by one byte. Features and scores are then py3langid's own (its model, its naive-Bayes
table in its float16, its length-scaled softmax, its alias folding), so the decisions are the same:
`tests/curate/test_langid.py` compares the two on real documents.
"""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path

import numpy as np

_BATCH = 256


def encode(text: str) -> bytes:
    """py3langid's input normalisation: all-caps text lowered, NFC, UTF-8."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


def _model_arrays() -> dict[str, np.ndarray]:
    """py3langid's model as flat arrays. The model ships LZMA-compressed (a second to unpack in
    every worker); the unpacked arrays are kept in the user cache and memory-mapped next time."""
    from importlib.metadata import version

    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    cache = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "infir"
        / f"py3langid-{version('py3langid')}"
    )
    if (cache / "complete").is_file():
        try:
            return {f.stem: np.load(f, mmap_mode="r", allow_pickle=False) for f in cache.glob("*.npy")}
        except (OSError, ValueError):
            pass  # a broken cache: rebuild it
    model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    arrays = {
        "nextmove": np.frombuffer(model.tk_nextmove, dtype=np.uint32).astype(np.int32),
        "rowbase": np.asarray(model.tk_row, dtype=np.int32) << 8,
        "output": np.asarray(model.tk_output, dtype=np.int32),
        "ptc": model.nb_ptc.astype(np.float32),  # exact copy of the float16 table, faster to sum
        "pc": np.asarray(model.nb_pc),
        "classes": np.array(model.nb_classes),
        "alias_pairs": np.array(model._alias_pairs, dtype=np.int64).reshape(-1, 2),
    }
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            tmp = cache / f"{name}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, array)
            tmp.replace(cache / f"{name}.npy")
        (cache / "complete").touch()
    except OSError:
        pass  # a read-only home: unpack every time
    return arrays


class BatchLangId:
    def __init__(self):
        arrays = _model_arrays()
        self.nextmove, self.rowbase, self.output = arrays["nextmove"], arrays["rowbase"], arrays["output"]
        self.ptc, self.pc = arrays["ptc"], arrays["pc"]
        self.classes = [str(c) for c in arrays["classes"]]
        self.alias_pairs = [tuple(int(x) for x in pair) for pair in arrays["alias_pairs"]]

    def features(self, encoded: list[bytes]) -> list[np.ndarray]:
        """Feature ids emitted along each document's automaton walk (py3langid's `visit_counts`)."""
        out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths, little padding
        for start in range(0, len(order), _BATCH):
            members = order[start : start + _BATCH]
            width = len(encoded[members[-1]])
            if width == 0:
                continue
            columns = np.zeros((width, len(members)), dtype=np.uint8)  # one row per byte position
            for j, i in enumerate(members):
                data = np.frombuffer(encoded[i], dtype=np.uint8)
                columns[: len(data), j] = data
            state = np.zeros(len(members), dtype=np.int32)
            emitted = np.empty((width, len(members)), dtype=np.int32)
            nextmove, rowbase, output = self.nextmove, self.rowbase, self.output
            for pos in range(width):
                state = nextmove[rowbase[state] + columns[pos]]
                emitted[pos] = output[state]
            for j, i in enumerate(members):
                feats = emitted[: len(encoded[i]), j]
                out[i] = feats[feats >= 0]
        return out

    def scores(self, data: bytes, feats: np.ndarray) -> np.ndarray:
        """Class probabilities of one document, as py3langid's `_decide` with `norm_probs`."""
        if len(feats):
            idx, counts = np.unique(feats, return_counts=True)
            # a weighted row sum, not `@`: per-document BLAS calls spin threads against the other
            # workers on a busy machine
            weights = np.log1p(counts.astype(np.float32))
            scores = (self.ptc[idx] * weights[:, None]).sum(axis=0) + self.pc
        else:  # no feature: uniform, as py3langid
            scores = np.zeros(len(self.classes), dtype=np.float32)
        scores *= 1.0 / math.sqrt(len(data) or 1)
        np.exp(scores - scores.max(), out=scores)
        scores /= scores.sum()
        for i, j in self.alias_pairs:
            scores[i] += scores[j]
            scores[j] = 0.0
        return scores

    def classify(self, texts: list[str]) -> list[tuple[str, float]]:
        encoded = [encode(t) for t in texts]
        results = []
        for data, feats in zip(encoded, self.features(encoded)):
            scores = self.scores(data, feats)
            best = int(scores.argmax())
            results.append((self.classes[best], float(scores[best])))
        return results
