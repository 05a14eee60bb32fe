"""Language identification that works offline right after `pip install`.

By default py3langid, whose model ships inside the package. At scale, point `model_path` to a
fastText language-id model (lid.176.bin, GlotLID): same step, faster and wider. Code is not
judged by language (its keywords are English whatever its comments), and math is judged on its
prose with the LaTeX taken out.
"""

from __future__ import annotations

import re

from datatrove.data import Document

from infir.curate.config import LangIdConfig
from infir.curate.filters.domain_guess import guess_domain
from infir.curate.steps import CurateStep

_LATEX = re.compile(r"\$[^$]*\$|\\\[.*?\\\]|\\[a-zA-Z]+|[{}_^]", re.S)


class _Py3LangId:
    def __init__(self):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def __call__(self, text: str) -> tuple[str, float]:
        lang, prob = self.model.classify(text)
        return lang, float(prob)


class _FastTextLangId:
    def __init__(self, path: str):
        import fasttext

        self.model = fasttext.load_model(path)

    def __call__(self, text: str) -> tuple[str, float]:
        labels, probs = self.model.predict(text.replace("\n", " "), k=1)
        label = labels[0].removeprefix("__label__")
        return label.split("_")[0] if "_" in label else label, float(probs[0])


def _code_of(lang: str) -> str:
    # GlotLID labels are ISO 639-3 ("eng"), lid.176 and py3langid ISO 639-1 ("en").
    return {"eng": "en", "fra": "fr", "deu": "de", "spa": "es", "zho": "zh", "rus": "ru"}.get(lang, lang)


class LanguageFilter(CurateStep):
    name = "🌐 language id"
    step_name = "langid"

    def __init__(self, cfg: LangIdConfig, removed_dir: str | None = None):
        super().__init__(removed_dir)
        self.cfg = cfg
        self._model = None

    def setup(self, rank: int, world_size: int) -> None:
        if self._model is None:
            self._model = _FastTextLangId(self.cfg.model_path) if self.cfg.model_path else _Py3LangId()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        domain = guess_domain(doc)
        if domain == "code":
            return True
        text = doc.text[: self.cfg.max_chars]
        if domain == "math":
            text = _LATEX.sub(" ", text)
        lang, score = self._model(text)
        lang = _code_of(lang)
        doc.metadata["language"] = lang
        doc.metadata["language_score"] = round(score, 3)
        if score < self.cfg.min_score:
            # Formulas, option tables and identifiers confuse language id; only prose must be clear.
            return (False, "language_unclear") if domain == "prose" else True
        if lang not in self.cfg.languages:
            return False, f"language_{lang}"
        return True
