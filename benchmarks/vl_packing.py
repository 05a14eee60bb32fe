"""VL training throughput: our packed multimodal rows against transformers' LlavaProcessor batches.

Peer: the usual VLM fine-tuning collator, `LlavaProcessor.apply_chat_template(..., padding=True,
return_assistant_tokens_mask=True)` on each global batch, one conversation per row, padded to the
batch's longest (TRL's SFTTrainer does this for LLaVA). Ours: `infir.vl.batches.VLBatches`, encoded
once, several conversations per row (best-fit decreasing) with positions restarting per
conversation. Same model (the tiny-vl shape), same generated conversations (shapes, charts, GUI,
text), same shared Trainer, same tokens per row budget. Reported: conversations/s (what sets an
epoch's time), padding share, and the time spent building batches.

    python benchmarks/vl_packing.py [--conversations 600] [--steps 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import torch


class ProcessorBatches:
    """The peer: LlavaProcessor renders, tokenizes, expands images and pads every batch."""

    def __init__(self, processor, conversations, batch: int, seed: int = 0):
        self.processor, self.batch = processor, batch
        self.order = list(range(len(conversations)))
        random.Random(seed).shuffle(self.order)
        self.conversations, self.step, self.build_seconds = conversations, 0, 0.0

    @staticmethod
    def hf_messages(conv) -> list[dict]:
        out = []
        for m in conv.messages:
            parts = m["content"].split("<image>")
            content = []
            for k, text in enumerate(parts):
                if k:
                    content.append({"type": "image", "image": conv.images[0]})
                if text:
                    content.append({"type": "text", "text": text})
            out.append({"role": m["role"], "content": content})
        return out

    def batch_at(self, step: int) -> dict:
        t0 = time.perf_counter()
        idx = [self.order[(step * self.batch + i) % len(self.order)] for i in range(self.batch)]
        enc = self.processor.apply_chat_template(
            [self.hf_messages(self.conversations[i]) for i in idx],
            tokenize=True,
            return_dict=True,
            padding=True,
            return_tensors="pt",
            return_assistant_tokens_mask=True,
        )
        ids = enc["input_ids"]
        labels = torch.where(enc["assistant_masks"].bool(), ids, torch.full_like(ids, -100))
        pos = torch.arange(ids.size(1)).expand_as(ids).contiguous()
        self.build_seconds += time.perf_counter() - t0
        return {
            "input_ids": ids,
            "labels": labels,
            "position_ids": pos,
            "pixel_values": enc["pixel_values"],
            "conversations": torch.tensor(len(idx)),
        }

    def __iter__(self):
        while True:
            yield self.batch_at(self.step)
            self.step += 1

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = state["step"]


class TimedBatches:
    """Wraps our VLBatches to count conversations and batch-building time."""

    def __init__(self, inner):
        self.inner, self.step, self.build_seconds = inner, 0, 0.0

    def batch_at(self, step: int) -> dict:
        t0 = time.perf_counter()
        batch = self.inner.batch_at(step)
        per = self.inner.global_batch
        start = step * per
        batch["conversations"] = torch.tensor(
            sum(len(self.inner.rows[self.inner._row_index(p)]) for p in range(start, start + per))
        )
        self.build_seconds += time.perf_counter() - t0
        return batch

    def __iter__(self):
        while True:
            yield self.batch_at(self.step)
            self.step += 1

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = state["step"]


def build(tmp: Path, n: int):
    from transformers import AutoTokenizer

    from infir.model.llm import ModelConfig, build_model
    from infir.model.vision import VisionConfig, build_vision_tower
    from infir.model.vlm import build_processor, build_vlm
    from infir.tokenize.config import TokenizerConfig
    from infir.tokenize.tokenizer import train_tokenizer
    from infir.vl.data import from_generated
    from infir.data.images import generate

    rng = random.Random(0)
    images = [g for name in ("shapes", "charts", "gui", "text") for g in generate(name, n // 4, 0, size=96)]
    texts = [qa.question + "\n" + qa.answer for g in images for qa in g.qas]
    train_tokenizer(texts, TokenizerConfig(vocab_size=1024), tmp / "tok", log=lambda *_: None)
    tok = AutoTokenizer.from_pretrained(tmp / "tok")
    convs = [from_generated(g, None, 4, rng) for g in images]

    def model_and_processor():
        torch.manual_seed(0)
        lm = build_model(
            ModelConfig(
                preset=None,
                hidden_size=192,
                num_layers=4,
                num_heads=4,
                intermediate_size=512,
                max_position_embeddings=1024,
            ),
            tokenizer=tok,
        )
        model = build_vlm(build_vision_tower(VisionConfig(preset="tiny")), lm, tok)
        return model, build_processor(tok, model.config)

    return convs, model_and_processor


def run_mode(
    mode: str, convs, model_and_processor, steps: int, warmup: int, rows: int, seq: int, tmp: Path
) -> dict:
    """`rows` rows per optimizer step either way: packed rows of `seq` tokens, or one padded conversation each."""
    from infir.train.config import TrainConfig
    from infir.train.parallel import DistInfo
    from infir.train.trainer import Trainer
    from infir.train.callbacks import OnLog
    from infir.model.vlm_inputs import ImagePreparer
    from infir.vl.batches import VLBatches, encode_all_vl

    model, processor = model_and_processor()
    if mode == "packed":
        examples, _ = encode_all_vl(
            processor.tokenizer, convs, model.config.image_token_id, model.config.image_seq_length, seq
        )
        inner = VLBatches(
            examples, seq, rows, 0, processor.tokenizer.pad_token_id, ImagePreparer(processor.image_processor)
        )
        data = TimedBatches(inner)
        padding = inner.padding_share()
    else:
        data = ProcessorBatches(processor, convs, rows)
        padding = None
    stamps, counted = {}, {"conversations": 0, "tokens": 0, "useful": 0}
    pad = processor.tokenizer.pad_token_id

    def on_step(step, record):
        stamps[step] = time.perf_counter()
        if step > warmup:
            b = data.batch_at(step - 1)
            counted["conversations"] += int(b["conversations"])
            counted["tokens"] += b["input_ids"].numel()
            counted["useful"] += int((b["input_ids"] != pad).sum())

    n = steps + warmup
    cfg = TrainConfig(
        max_steps=n,
        global_batch_size=rows,
        micro_batch_size=rows,
        seq_len=seq,
        log_every=1,
        resume="never",
        peak_flops=1.0,
        precision="fp32",
    )
    trainer = Trainer(
        cfg, model, None, data, tmp / mode, DistInfo(), log=lambda m: None, callbacks=[OnLog(on_step)]
    )
    trainer.save = lambda: None
    trainer.fit()
    secs = stamps[n] - stamps[warmup]
    if padding is None:
        padding = 1 - counted["useful"] / counted["tokens"]
    # on_step rebuilt each counted batch once more: halve the build time to the training share.
    return {
        "conversations_per_s": round(counted["conversations"] / secs, 2),
        "useful_tokens_per_s": round(counted["useful"] / secs, 1),
        "padding_share": round(padding, 4),
        "build_seconds_per_step": round(data.build_seconds / (2 * steps + warmup), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=600)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    rows, seq = 8, 512  # the tiny-vl recipe's global batch
    runs: dict[str, list[dict]] = {"packed": [], "llava_processor": []}
    with tempfile.TemporaryDirectory() as tmp:
        convs, factory = build(Path(tmp), args.conversations)
        for r in range(args.repeats):  # alternate the order so drifting machine load hits both
            for mode in ("packed", "llava_processor") if r % 2 == 0 else ("llava_processor", "packed"):
                res = run_mode(mode, convs, factory, args.steps, args.warmup, rows, seq, Path(tmp) / str(r))
                runs[mode].append(res)
                print(mode, res, flush=True)
    best = {m: max(v, key=lambda x: x["conversations_per_s"]) for m, v in runs.items()}
    print(
        json.dumps(
            {
                "benchmark": "vl_packing",
                "conversations": len(convs),
                "seq_len": seq,
                "results": best,
                "speedup_vs_llava_processor": round(
                    best["packed"]["conversations_per_s"] / best["llava_processor"]["conversations_per_s"], 3
                ),
                "threads": args.threads,
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
