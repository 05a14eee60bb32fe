"""SFT data synthesis with verification (InfiR's SFT data pipeline); see `infir.synth.pipeline`.

config.py     the `synth:` recipe section
seeds.py      seed instructions (JSONL, Hugging Face, generated problems, registry tasks)
evolve.py     instruction evolution by the teacher
teachers.py   OpenAI-compatible HTTP teacher, local transformers teacher; the request cache in front
generated.py  the tiny recipe's teacher (worked solutions, a configured share wrong)
http.py       concurrency, retries with backoff, rate limiting, secrets kept out of logs
cache.py      request-keyed response cache (SQLite)
verify.py     math-verify, registry Tasks (code in the sandbox), reward model / judge
scorers.py    pluggable HTTP reward model and LLM judge
select.py     dedup, decontamination, rejection sampling, difficulty, labels
pipeline.py   the steps in order, the funnel, the output files
stage.py      `infir synth RECIPE`;  cli.py: `infir synth --seeds FILE ...` (no run directory)
loopback.py   an OpenAI-compatible stand-in server on 127.0.0.1 for tests, benchmarks and dry runs
"""
