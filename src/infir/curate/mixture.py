"""Domain mixtures: how often each kept document is seen so a mix meets its target weights.

For a mix with weights w_d over domains holding T_d tokens, and a budget of N tokens (the mix's
`target_tokens`, or all kept tokens), a domain's sample rate is r_d = w_d * N / T_d: above 1 its
documents repeat, below 1 they are subsampled. The tokenizer / loader applies the rates.
"""

from __future__ import annotations

from datatrove.data import Document

from infir.curate.config import MixtureConfig, MixtureSpec
from infir.curate.steps import CurateStep, word_count


def sample_rates(spec: MixtureSpec, tokens: dict[str, int], docs: dict[str, int]) -> dict:
    total_weight = sum(w for d, w in spec.weights.items() if tokens.get(d))
    budget = spec.target_tokens or sum(tokens.values())
    domains = {}
    for domain, weight in spec.weights.items():
        t = tokens.get(domain, 0)
        rate = (weight / total_weight) * budget / t if t and total_weight else 0.0
        domains[domain] = {"docs": docs.get(domain, 0), "tokens": t, "sample_rate": round(rate, 6)}
    return {
        "weights": dict(spec.weights),
        "target_tokens": budget,
        "domains": domains,
        "missing_domains": [d for d, w in spec.weights.items() if w > 0 and not tokens.get(d)],
    }


def mixtures(cfg: MixtureConfig, tokens: dict[str, int], docs: dict[str, int]) -> dict:
    return {
        "pretrain": sample_rates(cfg.pretrain, tokens, docs),
        "anneal": sample_rates(cfg.anneal, tokens, docs),
        "token_count": f"approximate: whitespace words x {cfg.tokens_per_word}",
    }


class DomainCount(CurateStep):
    """Counts kept documents and approximate tokens per domain; drops nothing."""

    name = "🥣 mixture counts"
    step_name = "mixture"

    def __init__(self, cfg: MixtureConfig):
        super().__init__(None)
        self.cfg = cfg
        self.books["per_domain"] = {}

    def filter(self, doc: Document) -> bool:
        domain = doc.metadata.get("domain", "web")
        tokens = int(round(word_count(doc) * self.cfg.tokens_per_word))
        doc.metadata["tokens"] = tokens
        entry = self.books["per_domain"].setdefault(domain, {"docs": 0, "tokens": 0})
        entry["docs"] += 1
        entry["tokens"] += tokens
        return True
