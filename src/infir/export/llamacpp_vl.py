"""A vision-language model in llama.cpp: the text GGUF plus the `mmproj` file, through `libmtmd`.

The prompt is our model's own text with the image marker (`<image>`) where the image goes; libmtmd
splits it there, encodes the image with the mmproj file's vision tower and projector, and feeds text
tokens and image embeddings to the language model in order. Decoding is greedy, so the tokens can be
compared one for one with transformers' `generate` on the same checkpoint.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infir.export.llamacpp import LlamaCppModel


@dataclass
class VLGeneration:
    token_ids: list[int]
    text: str
    prompt_eval_ms: float  # the prompt: its text tokens and the image (encoded and fed to the LM)
    prompt_tokens: int


class LlamaCppVLM:
    def __init__(
        self,
        text_gguf: str | Path,
        mmproj: str | Path,
        *,
        image_marker: str = "<image>",
        n_ctx: int = 1024,
        threads: int | None = None,
    ):
        from llama_cpp import mtmd_cpp

        self.text = LlamaCppModel(text_gguf, n_ctx=n_ctx, threads=threads)
        self._m = mtmd_cpp
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu, params.warmup, params.print_timings = False, False, False
        params.n_threads = threads or 1
        self._marker = image_marker.encode()
        params.media_marker = self._marker
        self.ctx = mtmd_cpp.mtmd_init_from_file(str(mmproj).encode(), self.text.llm.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not load the mmproj file {mmproj} for {text_gguf}")
        self.n_ctx = n_ctx

    def close(self) -> None:
        if self.ctx:
            self._m.mtmd_free(self.ctx)
            self.ctx = None

    def __del__(self):
        self.close()

    def greedy(
        self, prompt: str, image: np.ndarray, max_new_tokens: int, stop_at_eog: bool = True
    ) -> VLGeneration:
        """Greedy continuation of `prompt` (holding the image marker once) with `image` (H x W x 3, uint8)."""
        import llama_cpp

        m, llm = self._m, self.text.llm
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
        image = np.ascontiguousarray(image, dtype=np.uint8)
        bitmap = m.mtmd_bitmap_init(
            image.shape[1], image.shape[0], (ctypes.c_uint8 * image.size).from_buffer_copy(image.tobytes())
        )
        chunks = m.mtmd_input_chunks_init()
        try:
            text = m.mtmd_input_text()
            encoded = prompt.encode()
            text.text, text.text_len, text.add_special, text.parse_special = encoded, len(encoded), True, True
            if (
                m.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), (m.mtmd_bitmap_p_ctypes * 1)(bitmap), 1)
                != 0
            ):
                raise ValueError(f"llama.cpp could not tokenize the prompt with one image: {prompt[:80]!r}")
            n_past = llama_cpp.llama_pos(0)
            t0 = time.perf_counter()
            if m.mtmd_helper_eval_chunks(
                self.ctx, llm.ctx, chunks, 0, 0, self.n_ctx, True, ctypes.byref(n_past)
            ):
                raise RuntimeError("llama.cpp failed to evaluate the prompt and image")
            eval_ms = (time.perf_counter() - t0) * 1000
            prompt_tokens = int(n_past.value)
        finally:
            m.mtmd_input_chunks_free(chunks)
            m.mtmd_bitmap_free(bitmap)
        out: list[int] = []
        vocab = self.text.n_vocab
        for _ in range(max_new_tokens):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))
            token = int(np.argmax(logits))
            out.append(token)
            if stop_at_eog and self.text.is_end_of_generation(token):
                break
            batch = llama_cpp.llama_batch_get_one((llama_cpp.llama_token * 1)(token), 1)
            if llama_cpp.llama_decode(llm.ctx, batch) != 0:
                raise RuntimeError("llama.cpp failed to decode a token")
        return VLGeneration(out, self.text.detokenize(out), round(eval_ms, 2), prompt_tokens)
