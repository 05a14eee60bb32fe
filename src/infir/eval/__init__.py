"""Evaluation: benchmark tasks, batched generation, answer checking and a sandbox for generated code."""
