"""Split readers: each task reads only its own part of an input (a byte range of a plain JSONL
file, some row groups of a Parquet file, some files of a Hugging Face dataset), never the whole."""
