"""The `sft` stage: conversations -> chat template -> packed rows -> the shared trainer."""

from __future__ import annotations

from infir.run import StageContext
from infir.sft.data import load_conversations
from infir.sft.packing import ConversationBatches, encode_all
from infir.train.parallel import init_distributed
from infir.train.stage import fit_stage, load_model, resolve_init


def sft_init(ctx: StageContext) -> str | None:
    init = ctx.recipe.sft.init_from
    if init == "auto":
        before = [s for s in ("anneal", "pretrain") if s in ctx.recipe.stages]
        init = before[0] if before else None
    return init


def end_of_turn_ids(tokenizer) -> list[int]:
    """Tokens that end an assistant turn: generation must stop on them."""
    ids = []
    for tok in ("<|im_end|>", tokenizer.eos_token):
        if tok is not None:
            tid = tokenizer.convert_tokens_to_ids(tok)
            if tid is not None and tid != tokenizer.unk_token_id and tid not in ids:
                ids.append(tid)
    return ids


def run(ctx: StageContext) -> dict:
    from transformers import AutoTokenizer

    cfg = ctx.recipe.sft
    info = init_distributed(ctx.recipe.runtime.device)
    init = sft_init(ctx)
    if init is None and ctx.recipe.model.name_or_path is None:
        raise ValueError("sft: nothing to start from (no pretrain/anneal stage, no sft.init_from, no model.name_or_path)")
    cfg = cfg.model_copy(update={"init_from": init})
    model_path = resolve_init(ctx, init) or ctx.recipe.model.name_or_path
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.chat_template is None:
        raise ValueError(f"sft: the tokenizer at {model_path} has no chat template")
    conversations, report = load_conversations(cfg.data, cfg.on_bad_record, run_dir=ctx.run_dir)
    max_tokens = cfg.max_conversation_tokens or cfg.seq_len
    examples, too_long = encode_all(tokenizer, conversations, max_tokens)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data = ConversationBatches(examples, cfg.seq_len, cfg.global_batch_size, ctx.recipe.seed, pad_id,
                               packing=cfg.packing, rank=info.rank, world_size=info.world_size)
    if cfg.max_steps is None:
        cfg = cfg.model_copy(update={"max_steps": data.steps_for(cfg.epochs)})
    model = load_model(ctx, cfg, tokenizer)
    model.generation_config.eos_token_id = end_of_turn_ids(tokenizer)
    model.generation_config.pad_token_id = pad_id
    extra = {"conversations": report.to_dict(), "too_long": dict(too_long), "examples": len(examples),
             "rows": len(data.rows), "packing": cfg.packing, "padding_share": round(data.padding_share(), 4),
             "epochs": cfg.epochs, "init_from": init}
    return fit_stage(ctx, cfg, model, tokenizer, data, None, info, extra)
