"""The pretrain and anneal stages: token shards -> the shared trainer."""
