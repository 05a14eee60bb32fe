"""A small Llama trained briefly on generated reasoning worksheets, for the export tests and benchmarks.

Built the way the tiny recipe builds its model (infir's byte-level BPE with single-digit splitting and
the ChatML specials, `infir.model.llm.build_model`), then trained for a few hundred steps so greedy
continuations follow the "Question: ...\\nAnswer: ..." layout instead of repeating one token.

    python benchmarks/edge_model.py --out DIR [--steps 300] [--untied] [--kv-heads 2] [--hidden 128]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch


def corpus(n_docs: int, seed: int = 0) -> list[str]:
    from infir.data.builtin import iter_builtin

    math = [d["text"] for d in itertools.islice(iter_builtin("reasoning_gym", seed=seed), n_docs)]
    code = [d["text"][:4000] for d in iter_builtin("python_stdlib", max_docs=max(1, n_docs // 10), seed=seed)]
    return math + code


def build_edge_model(
    out: Path,
    *,
    steps: int = 300,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int = 4,
    intermediate: int = 352,
    tie: bool = True,
    vocab_size: int = 1024,
    seq_len: int = 128,
    batch: int = 8,
    seed: int = 0,
    threads: int | None = None,
    log=print,
) -> Path:
    """Train tokenizer + model and save both to `out` (loadable with AutoModelForCausalLM/AutoTokenizer)."""
    from infir.model.llm import ModelConfig, build_model
    from infir.tokenize.config import TokenizerConfig
    from infir.tokenize.tokenizer import train_tokenizer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out)
    texts = corpus(400, seed)
    tokenizer = train_tokenizer(
        texts, TokenizerConfig(vocab_size=vocab_size, max_train_chars=400_000), log=log
    )
    model = build_model(
        ModelConfig(
            preset=None,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv_heads,
            intermediate_size=intermediate,
            max_position_embeddings=512,
            tie_embeddings=tie,
        ),
        tokenizer=tokenizer,
    )
    eos = tokenizer.eos_token_id
    ids = [t for text in texts for t in tokenizer(text)["input_ids"] + [eos]]
    data = torch.tensor(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
        x = torch.stack([data[s : s + seq_len] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step}: loss {loss.item():.3f} ({time.perf_counter() - t0:.0f}s)")
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=352)
    p.add_argument("--untied", action="store_true")
    args = p.parse_args()
    build_edge_model(
        args.out,
        steps=args.steps,
        hidden=args.hidden,
        layers=args.layers,
        kv_heads=args.kv_heads,
        intermediate=args.intermediate,
        tie=not args.untied,
    )


if __name__ == "__main__":
    main()


def build_tiny_llava(text_model_dir: Path, out: Path, seed: int = 0) -> Path:
    """A LLaVA-1.5-layout model (CLIP ViT, Linear-GELU-Linear projector) around a trained text model.

    The vision side is random: enough to check that llama.cpp computes the same image features from the
    exported mmproj file as transformers does from the checkpoint.
    """
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    torch.manual_seed(seed)
    text = AutoModelForCausalLM.from_pretrained(str(text_model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(text_model_dir))
    vision = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        hidden_act="quick_gelu",
        projection_dim=64,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text.config,
        image_token_id=tokenizer.convert_tokens_to_ids("<|pad|>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=text.config.tie_word_embeddings,
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.model.language_model.load_state_dict(text.model.state_dict())
    if not text.config.tie_word_embeddings:
        model.lm_head.load_state_dict(text.lm_head.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)
