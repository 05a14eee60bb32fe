"""Data every machine has after install: builtin corpora and generated reasoning problems."""
