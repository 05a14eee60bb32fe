"""Reinforcement learning with verifiable rewards (GRPO) on the shared trainer."""
