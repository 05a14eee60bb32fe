"""Typed configuration of `infir curate`.

Defaults suit a small CPU run: the builtin corpora as input, 2 local workers, every step on,
recall seeds made from what any machine has after install (generated reasoning problems,
LaTeX rendered by sympy, Python sources). Each step can be switched off with `enabled: false`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from infir.config_base import Section

Domain = Literal["web", "math", "code"]
DOMAINS: tuple[str, ...] = ("web", "math", "code")


class SourceConfig(Section):
    """One input. `jsonl`/`parquet`/`warc` read local or fsspec paths (globs allowed); `hf` streams a
    Hugging Face dataset by name; `builtin` calls `infir.data.builtin.iter_builtin(name, **kwargs)`."""

    type: Literal["jsonl", "parquet", "warc", "hf", "builtin"] = "jsonl"
    paths: list[str] = Field(default_factory=list)
    name: str | None = None  # hf dataset name or builtin source name
    subset: str | None = None  # hf config name
    split: str = "train"
    text_key: str = "text"
    id_key: str = "id"
    url_key: str = "url"
    limit: int | None = None  # at most this many documents from this source
    domain: Domain | None = None  # hint; recall still decides the final domain
    kwargs: dict = Field(default_factory=dict)  # passed to the builtin source

    @model_validator(mode="after")
    def _check(self) -> "SourceConfig":
        if self.type in ("jsonl", "parquet", "warc") and not self.paths:
            raise ValueError(f"a {self.type} source needs `paths`")
        if self.type in ("hf", "builtin") and not self.name:
            raise ValueError(f"a {self.type} source needs `name`")
        return self

    def label(self) -> str:
        return self.name or (self.paths[0] if self.paths else self.type)


def _default_sources() -> list[SourceConfig]:
    return [
        SourceConfig(type="builtin", name="python_docs", kwargs={"max_docs": 400}),
        SourceConfig(type="builtin", name="python_stdlib", kwargs={"max_docs": 200}),
        SourceConfig(type="builtin", name="reasoning_gym", kwargs={"docs_per_family": 50}),
    ]


class LangIdConfig(Section):
    enabled: bool = True
    languages: list[str] = Field(default_factory=lambda: ["en"])
    min_score: float = (
        0.5  # prose below it is dropped; math and documentation only for a confident other language
    )
    # None: py3langid, whose model ships inside the package (works offline). A path: a fastText
    # language-id model (lid.176.bin, GlotLID model.bin), the faster and wider choice at scale.
    model_path: str | None = None
    max_chars: int = 1000  # language is decided on the start of the document


class WebRules(Section):
    """Web prose: datatrove's Gopher, C4 and FineWeb rules (as in FineWeb's own pipeline)."""

    gopher_repetition: bool = True
    gopher_quality: bool = True
    c4: bool = True
    fineweb: bool = True
    fast_tokenizer: bool = True  # datatrove's rules with our spaCy-compatible splitter, without spaCy


class DomainRules(Section):
    """Rules that hold for every domain: the junk no reasoning model wants."""

    min_words: int = 20
    max_dup_line_frac: float = 0.3  # share of lines that repeat an earlier line
    max_top_2gram_frac: float = 0.2  # characters covered by the most frequent word bigram
    min_alpha_char_frac: float = 0.45  # letters among non-space characters
    min_stop_words: int = 2
    max_mean_word_len: float = 12.0


class CodeRules(Section):
    max_line_length: int = 1000
    max_mean_line_length: float = 100.0
    min_alnum_frac: float = 0.25
    max_data_line_frac: float = 0.95  # lines holding only literals: data files, not programs
    require_parse: bool = True  # Python must parse; other languages must balance their brackets
    max_dup_line_frac: float = 0.5


class FilterConfig(Section):
    enabled: bool = True
    web: WebRules = Field(default_factory=WebRules)
    technical: DomainRules = Field(
        default_factory=lambda: DomainRules(
            min_words=20, max_dup_line_frac=0.4, min_stop_words=0, max_mean_word_len=15
        )
    )
    math: DomainRules = Field(
        default_factory=lambda: DomainRules(
            min_words=5,
            min_stop_words=0,
            min_alpha_char_frac=0.25,
            max_mean_word_len=20,
            max_top_2gram_frac=0.3,
            max_dup_line_frac=0.5,
        )
    )
    code: CodeRules = Field(default_factory=CodeRules)
    # The paper's fix: math pages ending in a colon taught the model to stop after ":".
    colon_rule_domains: list[str] = Field(default_factory=lambda: ["math", "web", "technical"])


class RecallSeedSource(Section):
    """Positive seeds for one recall domain: JSONL files (field `text`) and/or builtin generators."""

    paths: list[str] = Field(default_factory=list)
    builtin: list[SourceConfig] = Field(default_factory=list)
    limit: int = 2000


def _math_seeds() -> RecallSeedSource:
    return RecallSeedSource(
        builtin=[
            SourceConfig(type="builtin", name="reasoning_gym", kwargs={"docs_per_family": 30, "seed": 1234}),
            SourceConfig(type="builtin", name="curate:math_text", kwargs={"n": 600}),
        ]
    )


def _code_seeds() -> RecallSeedSource:
    return RecallSeedSource(
        builtin=[SourceConfig(type="builtin", name="curate:python_code", kwargs={"n": 600})]
    )


class RecallConfig(Section):
    enabled: bool = True
    domains: list[str] = Field(default_factory=lambda: ["math", "code"])
    seeds: dict[str, RecallSeedSource] = Field(
        default_factory=lambda: {"math": _math_seeds(), "code": _code_seeds()}
    )
    # Extra negatives per domain, besides random corpus documents and the other domains' seeds.
    negative_seeds: dict[str, RecallSeedSource] = Field(default_factory=dict)
    rounds: int = 1  # rounds after the first: recalled docs join the positives, the model retrains
    threshold: float = 0.5  # score above which a document belongs to the domain
    positive_threshold: float = 0.9  # score above which a recalled document joins the positives
    negatives_per_positive: float = 1.5
    max_tokens_per_doc: int = 256  # the classifier reads this many tokens of each document,
    windows: int = 4  # ... in this many windows spread over a long document
    max_positives: int = 1500  # per round; recalled positives are sampled down to this
    epoch: int = 5
    dim: int = 16
    lr: float = 0.5
    word_ngrams: int = 2
    # Domain-level expansion: a URL prefix with many recalled pages gets its others reconsidered.
    expand_min_pages: int = 5
    expand_min_fraction: float = 0.5
    expand_threshold: float = 0.2
    url_prefix_depth: int = 1  # host + this many path segments
    # Code is programs: a page recalled as code must parse (Python) or keep a source file's layout.
    code_requires_program: bool = True

    @model_validator(mode="after")
    def _cap_covers_asked_seeds(self) -> "RecallConfig":
        # Seed files are the positives a recipe asks for, up to `limit`; sampling them down to max_positives
        # each round would quietly train on a fraction of them. (Builtin generators are sized by their own
        # arguments; their limit is only a bound.)
        capped = {d: s.limit for d, s in self.seeds.items() if s.paths and s.limit > self.max_positives}
        if capped:
            asked = ", ".join(f"seeds.{d}.limit={n}" for d, n in capped.items())
            raise ValueError(
                f"{asked} asks for more positives than max_positives={self.max_positives} keeps "
                "per round: raise max_positives to at least the limit, or lower the limit"
            )
        return self


class DedupConfig(Section):
    enabled: bool = True
    exact: bool = True
    minhash: bool = True
    ngram: int = 3  # word n-grams (shingles)
    bands: int = 20
    rows: int = 6
    # Candidates must agree on this share of all hashes (an estimate of their Jaccard similarity):
    # it removes chance collisions of banding, and at the content check's level a true near copy
    # whose estimate falls a little short is not lost to it.
    verify_threshold: float = 0.5
    seed: int = 1
    # Templated pages (manuals, reference pages) share long boilerplate: signatures of two
    # different pages can agree on most values. A pair that passes `verify_threshold` is kept only
    # when its content (word n-grams once lines common in the sample are removed) has at least this
    # Jaccard similarity; None: signatures alone decide.
    content_threshold: float | None = 0.5
    # a line is boilerplate when this share of the sample's documents (and at least
    # `boilerplate_min_docs` of them) hold it
    boilerplate_min_fraction: float = 0.001
    boilerplate_min_docs: int = 5
    # Rows (24 bytes each: one per band and one exact hash per document) a dedup task holds at
    # once: a scan task sorts its rows in runs of this many, and the pair stage gets one task per
    # key range of about this many rows (the count follows the corpus, counted after the scan).
    # A task's memory is this many rows plus sort and pair temporaries a few times that, whatever
    # the corpus size; the decisions do not depend on it.
    partition_rows: int = Field(default=2_000_000, ge=1)


class QualityConfig(Section):
    enabled: bool = True
    # JSONL of {"text", "score"} (e.g. LLM annotations, as FineWeb-Edu); without it the step
    # bootstraps a coherence model: corpus documents against their shuffled tokens.
    labels_path: str | None = None
    model_path: str | None = None  # a trained model to reuse instead of training
    # Documents scoring under their domain's threshold are dropped. The defaults suit the
    # bootstrap model (word salad scores near 0, ordered text near 1); with labels on a 0-5
    # scale, 0.6 keeps what annotators scored 3 or more.
    thresholds: dict[str, float] = Field(default_factory=lambda: {"web": 0.1, "math": 0.1, "code": 0.1})
    bootstrap_docs: int = 2000  # corpus documents sampled for the bootstrap model
    epoch: int = 5
    dim: int = 16


class DecontamConfig(Section):
    enabled: bool = True
    tasks: list[str] | None = None  # None: every task in the evaluation registry
    data_paths: dict[str, str] = Field(default_factory=dict)  # local data per task
    ngram: int = 10
    min_matches: int = 1  # n-grams shared with one benchmark item
    min_item_fraction: float = 0.5  # ... and at least this share of that item's n-grams
    # Benchmark texts shorter than `ngram` words count when they have this many words, or are a
    # short problem (words around a formula); shorter answers are stock phrases, not quotes.
    short_min_words: int = 8


class MixtureSpec(Section):
    weights: dict[str, float]
    target_tokens: int | None = None  # None: as many tokens as the kept data holds


class MixtureConfig(Section):
    enabled: bool = True
    pretrain: MixtureSpec = Field(
        default_factory=lambda: MixtureSpec(weights={"web": 0.5, "math": 0.25, "code": 0.25})
    )
    anneal: MixtureSpec = Field(
        default_factory=lambda: MixtureSpec(weights={"web": 0.1, "math": 0.5, "code": 0.4})
    )
    tokens_per_word: float = 1.3  # approximate token count: whitespace words x this factor


class RayConfig(Section):
    """`executor: ray`. The cluster at `address`, else at $RAY_ADDRESS, else a local one started
    with `workers` CPUs. Every node must be able to import infir and reach the input and output
    paths: on a cluster of several nodes these are fsspec URLs (s3://, gs://, hf://) or local paths
    on a filesystem all nodes mount, which `shared_fs: true` vouches for."""

    address: str | None = None
    shared_fs: bool = False
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 1.0  # memory Ray reserves per task CPU


class ExtraFilterSpec(Section):
    """A registered filter (`infir.curate.filters.register_filter`) and its keyword arguments."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from infir.curate.filters import registered_filters

        known = registered_filters()
        if name not in known:
            raise ValueError(f"unknown curation filter {name!r}; registered: {sorted(known) or 'none'}")
        return name


class CurateConfig(Section):
    sources: list[SourceConfig] = Field(default_factory=_default_sources)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    extra_filters: list[ExtraFilterSpec] = Field(default_factory=list)  # after `filters`, in this order
    recall: RecallConfig = Field(default_factory=RecallConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    write_removed: bool = True
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = Field(default_factory=RayConfig)
    # The work files between the stages (sorted runs, signatures, scanned shards, models, the
    # completion markers): a local path (on a Ray cluster of several nodes, one every node mounts,
    # with ray.shared_fs) or an fsspec URL (s3://bucket/run/work, gs://...), which every node
    # reaches; None: `<output>/_work`. With a URL, each task uploads what it wrote before it
    # completes and downloads what it reads at random into a node-local cache (`work_cache_dir`),
    # see `infir.curate.workfolder`. The output (kept and removed documents, summary) may be any
    # fsspec URL too.
    work_dir: str | None = None
    # The node-local cache of a remote work_dir: None: each node's $INFIR_CURATE_CACHE, else its
    # temporary folder. It holds about what a local work folder would, spread over the nodes; the
    # driver's copy is removed when the run ends, other nodes' copies stay until removed.
    work_cache_dir: str | None = None
    workers: int = 2
    tasks: int | None = None  # shards; None: one per worker (or per input file when there are more)
    # The recall and quality classifiers train on this many corpus documents (a sample drawn by
    # input position, the same for any shard plan) and run inside the workers: what the driver
    # and each scan worker hold for them is bounded by it, not by the corpus.
    max_train_docs: int = Field(default=50_000, ge=1)

    @model_serializer(mode="wrap")
    def _omit_no_extra_filters(self, handler):
        # Without extra filters the section dumps as it did before they existed: the same stage fingerprint,
        # so run directories made before them are not curated again.
        data = handler(self)
        if not self.extra_filters and isinstance(data, dict):
            data.pop("extra_filters", None)
        return data
