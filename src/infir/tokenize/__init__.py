"""Tokenizer training/loading, token shards, and the deterministic packing mixture loader.

The tokenize stage turns curated documents into memory-mapped token shards per domain; the
loader mixes those shard sets by weight and packs documents into sequences that never attend
across document boundaries. See `stage.py` for the run-directory layout.
"""
