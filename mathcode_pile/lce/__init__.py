"""MathCoder's LCE solutions: the block format, its tokens, SFT labels and data helpers.

``format`` serializes and parses conversations and converts them to and from chat messages and tool-integrated
Markdown; ``tokens`` adds the markers to a tokenizer and model; ``labels`` builds ``input_ids`` / ``labels`` that train
only what the model writes; ``syntax`` holds the block syntaxes (LCE markers, fenced ```python / ```output Markdown in
a chat template) that inference, labels and data loading share; ``dataset`` applies them to a ``datasets.Dataset``
with counted drops.
"""

from mathcode_pile.lce.format import (
    LCE_SPECIAL_TOKENS,
    Block,
    LCEFormatError,
    Message,
    build_conversation,
    parse_conversation,
    render_prompt,
    serialize_conversation,
)
from mathcode_pile.lce.labels import IGNORE_INDEX, tokenize_conversation
from mathcode_pile.lce.tokens import add_lce_tokens, prepare_lce_model_and_tokenizer

__all__ = [
    "IGNORE_INDEX",
    "LCE_SPECIAL_TOKENS",
    "Block",
    "LCEFormatError",
    "Message",
    "add_lce_tokens",
    "build_conversation",
    "parse_conversation",
    "prepare_lce_model_and_tokenizer",
    "render_prompt",
    "serialize_conversation",
    "tokenize_conversation",
]
