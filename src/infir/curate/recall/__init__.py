"""Reasoning-oriented recall: fastText classifiers (`classifier`), the generated seed documents they
start from (`seeds`), and the rounds of recall and URL-prefix expansion that give each document its
domain (`domains`)."""
