"""Evaluate a LLaVA-format model on VL tasks: chat prompt with images -> greedy generation -> task verdicts.

Prompts are rendered with the processor's chat template and their `<image>` tokens expanded exactly
as in training; rows are left-padded so generation continues from every row's last token.
Generation is transformers' `generate` (it feeds `pixel_values` to the first forward only and
keeps the KV cache); the batched text generator of `infir.eval.generate` has no image input.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from infir.tokenize.chat import chat_stop_token_ids
from infir.vl.batches import ImagePreparer, expand_image_tokens


def encode_prompt(tokenizer, messages: list[dict], image_token_id: int, n_image_tokens: int) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids, _ = expand_image_tokens(ids, [0] * len(ids), image_token_id, n_image_tokens)
    return ids


@torch.inference_mode()
def generate_answers(model, processor, task, docs: list[dict], batch_size: int = 32,
                     max_new_tokens: int | None = None, aspect: str = "resize") -> list[str]:
    tokenizer = processor.tokenizer
    image_token_id = model.config.image_token_id
    n_image_tokens = model.config.image_seq_length
    prepare = ImagePreparer(processor.image_processor, aspect)
    stops = chat_stop_token_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    device = next(model.parameters()).device
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(docs), batch_size):
        chunk = docs[start:start + batch_size]
        prompts = [encode_prompt(tokenizer, task.vl_messages(d), image_token_id, n_image_tokens) for d in chunk]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):  # left padding
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        images = [im for d in chunk for im in task.images(d)]
        inputs: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        if images:
            inputs["pixel_values"] = prepare(images).to(device, dtype=next(model.parameters()).dtype)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens or task.max_new_tokens, do_sample=False,
                             eos_token_id=stops, pad_token_id=pad)
        outputs += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return outputs


def evaluate_task(model, processor, task, limit: int | None = None, batch_size: int = 32,
                  samples_path: Path | None = None, aspect: str = "resize") -> dict:
    """Metrics of one task (`{metric: value, "n": N, "seconds": s}`); samples go to `samples_path`."""
    docs = task.docs(limit)
    t0 = time.perf_counter()
    outputs = generate_answers(model, processor, task, docs, batch_size, aspect=aspect)
    verdicts = [task.evaluate(doc, out) for doc, out in zip(docs, outputs)]
    metrics = task.aggregate(verdicts)
    metrics = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    metrics["n"] = len(docs)
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    if samples_path is not None:
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        with samples_path.open("w") as f:
            for i, (doc, out, v) in enumerate(zip(docs, outputs, verdicts)):
                record = {"doc_index": i, "question": task.doc_to_text(doc), "reference": doc.get("answer"),
                          "output": out, **v}
                f.write(json.dumps(record, default=str) + "\n")
    return metrics
