"""Web prose: datatrove's own Gopher repetition, Gopher quality, C4 and FineWeb rules, as FineWeb runs them.

With `fast_tokenizer` (the default) the rules count words with `FastEnglishTokenizer` instead of
spaCy; the rules, thresholds and reasons stay datatrove's.
"""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import get_filter_result
from datatrove.utils.typeshelper import Languages

from infir.curate.config import WebRules
from infir.curate.filters.fast_tokenizer import FastEnglishTokenizer


def build_web_filters(rules: WebRules) -> list[tuple[str, object]]:
    language = FastEnglishTokenizer() if rules.fast_tokenizer else Languages.english
    filters: list[tuple[str, object]] = []
    if rules.gopher_repetition:
        filters.append(("gopher_rep", GopherRepetitionFilter(language=language)))
    if rules.gopher_quality:
        filters.append(("gopher", GopherQualityFilter(language=language)))
    if rules.c4:
        # FineWeb keeps lines without terminal punctuation; C4's other line and page rules apply.
        filters.append(("c4", C4QualityFilter(filter_no_terminal_punct=False, language=language)))
    if rules.fineweb:
        filters.append(("fineweb", FineWebQualityFilter(language=language)))
    return filters


def web_reason(doc: Document, filters: list[tuple[str, object]]) -> str | None:
    """Runs the filters in order (C4 may drop lines from the text); the first failure is the reason."""
    for prefix, f in filters:
        keep, reason = get_filter_result(f.filter(doc))
        if not keep:
            reason = (reason or "dropped").removeprefix("gopher_")
            return f"{prefix}_{reason}"
    return None
