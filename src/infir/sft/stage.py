"""The `sft` stage: conversations -> chat template -> packed rows -> the shared trainer."""

from __future__ import annotations

from infir.run import StageContext
from infir.sft import encoded
from infir.sft.data import LoadReport, iter_conversations
from infir.sft.encoded import EncodedConversations
from infir.sft.packing import ConversationBatches
from infir.tokenize.chat import CHATML_TEMPLATE, has_chatml_tokens, use_chat_eos
from infir.tokenize.config import IM_END, IM_START, PAD
from infir.train.parallel import init_distributed
from infir.stages import resolve_start, start_of
from infir.train.fit import fit, initial_model


def ensure_chat_tokens(tokenizer, model) -> None:
    """A base tokenizer without ChatML tokens (e.g. Llama-3.2's) gets them, and the model new rows."""
    if has_chatml_tokens(tokenizer):
        return
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD})
    model.resize_token_embeddings(len(tokenizer))


def encoded_conversations(ctx: StageContext, cfg, tokenizer, info) -> EncodedConversations:
    """The run's conversations tokenized and packed once (every rank encodes a share, rank 0 joins and
    packs them), kept in the stage directory for a resumed run."""
    from infir.train.parallel import broadcast_from_main, coordination_group, wait_for_all

    folder = ctx.stage_dir / "encoded"
    group = coordination_group() if info.distributed else None
    if broadcast_from_main(encoded.is_built(folder), info, group):
        return EncodedConversations(folder)

    def conversations():
        report = LoadReport()
        return iter_conversations(cfg.data, cfg.on_bad_record, ctx.run_dir, report), report.to_dict

    return encoded.build(
        folder,
        tokenizer,
        conversations,
        cfg.max_conversation_tokens or cfg.seq_len,
        cfg.seq_len,
        cfg.packing,
        info.rank,
        info.world_size,
        wait=lambda: wait_for_all(info),
    )


def run(ctx: StageContext) -> dict:
    from transformers import AutoTokenizer

    cfg = ctx.recipe.sft
    info = init_distributed(ctx.recipe.runtime.device)
    init = start_of(ctx.recipe, "sft")
    if init is None and ctx.recipe.model.name_or_path is None:
        raise ValueError(
            "sft: nothing to start from (no pretrain/anneal stage, no sft.init_from, no model.name_or_path)"
        )
    start = resolve_start(ctx)
    tokenizer = AutoTokenizer.from_pretrained(start or ctx.recipe.model.name_or_path)
    model = initial_model(ctx, tokenizer, start)
    ensure_chat_tokens(tokenizer, model)
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHATML_TEMPLATE
    examples = encoded_conversations(ctx, cfg, tokenizer, info)
    data = ConversationBatches(
        examples,
        cfg.seq_len,
        cfg.global_batch_size,
        ctx.recipe.seed,
        tokenizer.pad_token_id,
        packing=cfg.packing,
        rank=info.rank,
        world_size=info.world_size,
        rows=examples.rows(),
    )
    if cfg.max_steps is None:
        cfg = cfg.model_copy(update={"max_steps": data.steps_for(cfg.epochs)})
    use_chat_eos(tokenizer, model)  # the SFT model stops at end-of-turn
    extra = {
        "conversations": examples.meta["load"],
        "too_long": examples.meta["too_long"],
        "examples": len(examples),
        "rows": len(data.rows),
        "packing": cfg.packing,
        "padding_share": round(data.padding_share(), 4),
        "epochs": cfg.epochs,
        "init_from": init,
    }
    return fit(cfg, model, tokenizer, data, ctx.stage_dir, info, seed=ctx.recipe.seed, extra_summary=extra)
