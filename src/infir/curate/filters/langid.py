"""Language identification that works offline right after `pip install`.

By default py3langid's model, which ships inside the package, run on a batch of documents at once
(`langid_batch`). At scale, point `model_path` to a fastText language-id model (lid.176.bin,
GlotLID): same step, wider. Code is not judged by language (its keywords are English whatever its
comments), and math is judged on its prose with the LaTeX taken out.
"""

from __future__ import annotations

import re

from datatrove.data import Document

from infir.curate.config import LangIdConfig
from infir.curate.filters.domain_guess import guess_domain
from infir.curate.steps import CurateStep

_LATEX = re.compile(r"\$[^$]*\$|\\\[.*?\\\]|\\[a-zA-Z]+|[{}_^]", re.S)


class _FastTextLangId:
    def __init__(self, path: str):
        import fasttext

        self.model = fasttext.load_model(path)

    def classify(self, texts: list[str]) -> list[tuple[str, float]]:
        labels, probs = self.model.f.multilinePredict(
            [t.replace("\n", " ") + "\n" for t in texts], 1, 0.0, "replace"
        )
        out = []
        for label, prob in zip(labels, probs):
            name = label[0].removeprefix("__label__") if label else "und"
            out.append((name.split("_")[0] if "_" in name else name, float(prob[0]) if len(prob) else 0.0))
        return out


def _code_of(lang: str) -> str:
    # GlotLID labels are ISO 639-3 ("eng"), lid.176 and py3langid ISO 639-1 ("en").
    return {"eng": "en", "fra": "fr", "deu": "de", "spa": "es", "zho": "zh", "rus": "ru"}.get(lang, lang)


class LanguageFilter(CurateStep):
    name = "🌐 language id"
    step_name = "langid"
    batch_size = 512

    def __init__(self, cfg: LangIdConfig, removed_dir: str | None = None):
        super().__init__(removed_dir)
        self.cfg = cfg
        self._model = None

    def setup(self, rank: int, world_size: int) -> None:
        if self._model is None:
            from infir.curate.filters.langid_batch import BatchLangId

            self._model = _FastTextLangId(self.cfg.model_path) if self.cfg.model_path else BatchLangId()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, docs: list[Document]) -> list[bool | tuple[bool, str]]:
        results: list = [True] * len(docs)
        judged = [i for i, doc in enumerate(docs) if guess_domain(doc) != "code"]
        texts = []
        for i in judged:
            text = docs[i].text[: self.cfg.max_chars]
            texts.append(_LATEX.sub(" ", text) if guess_domain(docs[i]) == "math" else text)
        for i, (lang, score) in zip(judged, self._model.classify(texts) if texts else []):
            results[i] = self._decide(docs[i], _code_of(lang), score)
        return results

    def _decide(self, doc: Document, lang: str, score: float) -> bool | tuple[bool, str]:
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = round(score, 3)
        if score < self.cfg.min_score:
            # Formulas, option tables and identifiers confuse language id; only prose must be clear.
            return (False, "language_unclear") if guess_domain(doc) == "prose" else True
        if lang not in self.cfg.languages:
            return False, f"language_{lang}"
        return True
