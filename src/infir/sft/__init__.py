"""Supervised fine-tuning: conversations, chat template, assistant-only loss, packing."""
