"""Edge deployment: GGUF export (F16 / Q8_0 / Q4_0) for llama.cpp, bf16 safetensors, PyTorch int8
dynamic quantization, and the on-device benchmark (`infir bench-edge`).

Modules: `gguf_export` (weights + hyperparameters), `gguf_vocab` (tokenizer metadata), `quantize`
(int8 dynamic, bf16 export), `llamacpp` / `torch_runtime` (the two runtimes, timed alike),
`edge_bench` (measurements), `report` (rows for the run report), `stage`, `cli`.
"""
