"""Teach a tokenizer and a model the LCE markers.

The markers are registered as *added tokens*: matched whole before the model's own tokenization, never split, never
normalized. They are deliberately not flagged ``special``: inference servers (TGI, vLLM, llama.cpp) decode with
``skip_special_tokens``, which would strip ``<|code|>`` and ``<|endofblock|>`` from the returned text, and the
inference loop needs them there to tell a code block from a text block (MathCoder's released loop had to patch them
back from token details for that reason).

New embedding rows start at the mean of the existing rows rather than at random: a random row can sit far from every
trained embedding and make the first steps of fine-tuning produce huge logits for the new tokens.
"""

from __future__ import annotations

import logging
from typing import Any

from mathcode_pile.lce.format import END_OF_BLOCK, END_OF_MESSAGE, LCE_SPECIAL_TOKENS

logger = logging.getLogger(__name__)


#: Jinja chat template writing chat messages in the LCE format, so ``apply_chat_template`` (and chat endpoints that use
#: the tokenizer's template) produce the prompt the model was trained on. String content is one text block; typed
#: parts (``{"type": "code", "content": ...}``) become their blocks. A missing system turn is written empty.
LCE_CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' -%}<|system|><|text|><|endofblock|><|endofmessage|>"
    "{%- endif -%}"
    "{%- for message in messages -%}<|{{ message['role'] }}|>"
    "{%- if message['content'] is string -%}<|text|>{{ message['content'] }}<|endofblock|>"
    "{%- else -%}{%- for part in message['content'] -%}<|{{ part['type'] }}|>{{ part['content'] }}<|endofblock|>"
    "{%- endfor -%}{%- endif -%}<|endofmessage|>{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def add_lce_tokens(tokenizer: Any) -> list[int]:
    """Add every LCE marker the tokenizer lacks; returns the ids of all markers (in ``LCE_SPECIAL_TOKENS`` order)."""
    from tokenizers import AddedToken

    vocabulary = tokenizer.get_vocab()
    missing = [token for token in LCE_SPECIAL_TOKENS if token not in vocabulary]
    if missing:
        tokenizer.add_tokens(
            [AddedToken(token, special=False, normalized=False, lstrip=False, rstrip=False) for token in missing]
        )
        logger.info("added %d LCE marker tokens to the tokenizer (vocabulary now %d)", len(missing), len(tokenizer))
    return lce_token_ids(tokenizer)


def lce_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the LCE markers; raises when the tokenizer does not have them as single tokens."""
    ids = []
    for token in LCE_SPECIAL_TOKENS:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(
                f"the tokenizer splits the LCE marker {token} into {len(encoded)} tokens; call add_lce_tokens() first"
            )
        ids.extend(encoded)
    return ids


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Token ids that end one generation step: block end, message end, and the tokenizer's own EOS."""
    ids = [tokenizer.convert_tokens_to_ids(END_OF_BLOCK), tokenizer.convert_tokens_to_ids(END_OF_MESSAGE)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def resize_embeddings_with_mean(model: Any, tokenizer: Any, original_vocab_size: int) -> int:
    """Make room for every tokenizer id and set rows at ids >= ``original_vocab_size`` to the mean of the rows below.

    ``original_vocab_size`` is ``len(tokenizer)`` before :func:`add_lce_tokens`. Rows that already existed past it
    (some checkpoints pad their embedding matrix) are reset too, since nothing trained them. Output embeddings get the
    same treatment when they are not tied to the input ones. Returns the number of rows initialised.
    """
    import torch

    input_embeddings = model.get_input_embeddings()
    if len(tokenizer) > input_embeddings.weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    new_count = len(tokenizer) - original_vocab_size
    if new_count <= 0:
        return 0
    with torch.no_grad():
        matrices = [model.get_input_embeddings().weight]
        output_embeddings = model.get_output_embeddings()
        if output_embeddings is not None and output_embeddings.weight.data_ptr() != matrices[0].data_ptr():
            matrices.append(output_embeddings.weight)
        for weight in matrices:
            mean = weight[:original_vocab_size].float().mean(dim=0)
            weight[original_vocab_size : len(tokenizer)] = mean.to(weight.dtype)
    logger.info("initialised %d new embedding rows from the mean of %d trained rows", new_count, original_vocab_size)
    return new_count


def prepare_lce_model_and_tokenizer(model: Any, tokenizer: Any) -> list[int]:
    """Add the markers and the LCE chat template to the tokenizer and resize the model; returns the marker ids."""
    original_vocab_size = len(tokenizer)
    ids = add_lce_tokens(tokenizer)
    tokenizer.chat_template = LCE_CHAT_TEMPLATE
    resize_embeddings_with_mean(model, tokenizer, original_vocab_size)
    return ids
