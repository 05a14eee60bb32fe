"""The ChatML chat template and the end-of-turn convention of chat models.

Trained tokenizers carry this template. Assistant content is wrapped in
`{% generation %}...{% endgeneration %}`, so
`apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)`
returns `assistant_masks` covering each assistant reply *and* its `<|im_end|>` (the model must learn
to end its turn), but not the role header or the newline after `<|im_end|>`.

End of sequence, by model kind (Qwen's convention):
  - base models: `eos_token` is `<|endoftext|>`, the document end the shards are built with;
  - chat models (after SFT): call `use_chat_eos(tokenizer, model)`: `eos_token` becomes `<|im_end|>`
    and `generation_config.eos_token_id` lists `[<|im_end|>, <|endoftext|>]`, so `generate`, vLLM and
    llama.cpp stop at end-of-turn (and still stop at a stray end-of-text).
"""

from __future__ import annotations

from infir.tokenize.config import ENDOFTEXT, IM_END, IM_START

CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '" + IM_START + "assistant\\n' }}"
    "{% generation %}{{- message['content'] + '" + IM_END + "' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '" + IM_START + "' + message['role'] + '\\n' + message['content'] + '" + IM_END + "\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '" + IM_START + "assistant\\n' }}{%- endif %}"
)


def has_chatml_tokens(tokenizer) -> bool:
    vocab = tokenizer.get_vocab()
    return IM_START in vocab and IM_END in vocab


def chat_stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end generation in a chat model: end-of-turn first, then end-of-text."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[t] for t in (IM_END, ENDOFTEXT) if t in vocab]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def use_chat_eos(tokenizer, model=None) -> list[int]:
    """Make `tokenizer` (and `model`'s generation config) stop at end-of-turn; returns the stop ids.

    Call it on the SFT model before saving, never on a base model: pretraining documents end
    with `<|endoftext|>`, and a base model's eos must stay that token.
    """
    if not has_chatml_tokens(tokenizer):
        raise ValueError(
            f"tokenizer has no {IM_START}/{IM_END} tokens; add them (and resize the embeddings) "
            "before turning it into a chat tokenizer"
        )
    stops = chat_stop_token_ids(tokenizer)
    tokenizer.eos_token = IM_END
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHATML_TEMPLATE
    if model is not None:
        model.generation_config.eos_token_id = stops
        model.config.eos_token_id = stops[0]
        if tokenizer.pad_token_id is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
    return stops
