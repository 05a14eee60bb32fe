"""Deduplication: exact and MinHash signatures (`minhash`), the hashing they share (`hashing`), and the
restartable stages that find duplicate pairs over sorted bucket runs and resolve them (`stages`)."""
