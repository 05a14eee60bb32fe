"""The inputs a recipe reads but no corpus ships: recall seeds per domain and LLM quality annotations.

`infir inputs RECIPE` samples positives and negatives per recall domain from named Hugging Face datasets
or local JSONL/Parquet files (seeded reservoir sampling: memory bounded by the sample size, not the
source), and scores a sample of the corpus 0-5 with an OpenAI-compatible teacher (FineWeb-Edu's
prompt), writing each file where the `curate` section reads it.
"""
