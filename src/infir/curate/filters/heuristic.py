"""The domain-aware heuristic step: each document is judged by the rules of what it is.

prose      -> junk checks, then datatrove's Gopher + C4 + FineWeb rules (web.py)
technical  -> junk checks with documentation thresholds (manual pages, API references)
math       -> junk checks with math thresholds (short worked problems, LaTeX, few stop words)
code       -> code rules; text that looks like code but is no program (documentation full of
              examples, another format) is judged as technical instead, unless its source says code

The paper's colon rule runs first: a page ending in a colon loses its dangling last lines.
"""

from __future__ import annotations

from datatrove.data import Document

from infir.curate.config import FilterConfig
from infir.curate.filters.domain_guess import guess_domain, parses_cached
from infir.curate.filters.rules import code_reason, junk_reason, looks_like_python, trim_trailing_colon
from infir.curate.filters.web import build_web_filters, web_reason
from infir.curate.steps import CurateStep, set_text


class HeuristicFilter(CurateStep):
    name = "🧹 domain-aware heuristics"
    step_name = "heuristics"

    def __init__(self, cfg: FilterConfig, removed_dir: str | None = None):
        super().__init__(removed_dir)
        self.cfg = cfg
        self._web = None

    def setup(self, rank: int, world_size: int) -> None:
        if self._web is None:
            self._web = build_web_filters(self.cfg.web)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        kind = guess_domain(doc)
        if kind == "code":
            python = looks_like_python(doc.text)
            reason = code_reason(doc.text, self.cfg.code, parses_cached(doc) if python else None)
            declared = doc.metadata.get("domain_hint") == "code"
            if reason == "code_does_not_parse" and not declared:
                kind = doc.metadata["_kind"] = "technical"  # code-like, but no program: judge as docs
            else:
                return (False, reason) if reason else True
        if kind in self.cfg.colon_rule_domains and doc.text.rstrip().endswith(":"):
            trimmed = trim_trailing_colon(doc.text)
            if not trimmed:
                return False, "ends_with_colon"
            set_text(doc, trimmed)
            doc.metadata["colon_trimmed"] = True
        if kind == "math":
            reason = junk_reason(doc.text, self.cfg.math)
        elif kind == "technical":
            reason = junk_reason(doc.text, self.cfg.technical)
        else:
            reason = junk_reason(doc.text, self.cfg.technical) or web_reason(doc, self._web)
            if reason is None:
                doc.metadata["_words"] = len(doc.text.split())  # C4 may have dropped lines
        return (False, f"{kind}:{reason}") if reason else True
