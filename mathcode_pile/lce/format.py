"""The LCE solution format of MathCoder: natural language (L), code (C) and execution results (E) in marked blocks.

A conversation is a list of messages; each message has a role and a sequence of blocks::

    <|system|><|text|>...<|endofblock|><|endofmessage|>
    <|user|><|text|>question<|endofblock|><|endofmessage|>
    <|assistant|><|text|>reasoning<|endofblock|><|code|>x = 2 + 3
    print(x)<|endofblock|><|execution|>5<|endofblock|><|text|>So the answer is 5.<|endofblock|><|endofmessage|>

Block contents are kept verbatim (no stripping), so ``parse_conversation(serialize_conversation(m)) == m`` holds for
every conversation whose contents do not themselves contain a marker (which :func:`serialize_conversation` refuses).

Besides the serialized string, the same conversation travels in two other shapes this module converts from and to:

* chat messages whose ``content`` is a list of ``{"type": kind, "content": text}`` parts (the MathCodeInstruct
  layout) or a plain string;
* the Markdown style of tool-integrated datasets such as NuminaMath-TIR, where code sits in a ```` ```python ````
  fence and its execution output in the ```` ```output ```` fence right after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

BlockKind = Literal["text", "code", "execution"]
Role = Literal["system", "user", "assistant"]

SYSTEM_TOKEN = "<|system|>"
USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
TEXT_TOKEN = "<|text|>"
CODE_TOKEN = "<|code|>"
EXECUTION_TOKEN = "<|execution|>"
END_OF_BLOCK = "<|endofblock|>"
END_OF_MESSAGE = "<|endofmessage|>"

ROLE_TOKENS: dict[str, str] = {"system": SYSTEM_TOKEN, "user": USER_TOKEN, "assistant": ASSISTANT_TOKEN}
BLOCK_TOKENS: dict[str, str] = {"text": TEXT_TOKEN, "code": CODE_TOKEN, "execution": EXECUTION_TOKEN}
ROLE_BY_TOKEN = {token: role for role, token in ROLE_TOKENS.items()}
KIND_BY_TOKEN = {token: kind for kind, token in BLOCK_TOKENS.items()}

#: Every marker of the format, in a fixed order (the order new token ids are assigned in).
LCE_SPECIAL_TOKENS: tuple[str, ...] = (
    SYSTEM_TOKEN,
    USER_TOKEN,
    ASSISTANT_TOKEN,
    TEXT_TOKEN,
    CODE_TOKEN,
    EXECUTION_TOKEN,
    END_OF_BLOCK,
    END_OF_MESSAGE,
)

_MARKER_PATTERN = re.compile("(" + "|".join(re.escape(token) for token in LCE_SPECIAL_TOKENS) + ")")


class LCEFormatError(ValueError):
    """Text or messages that do not follow the LCE format; the message says where.

    ``reason`` is the short name a dataset loader counts the dropped row under (``invalid_format`` unless a more
    precise one applies, e.g. ``unclosed_code_fence``).
    """

    def __init__(self, message: str, reason: str = "invalid_format") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """One component of a message: natural language, code, or the output of the code block before it."""

    kind: BlockKind
    content: str

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_TOKENS:
            raise LCEFormatError(f"unknown block kind {self.kind!r}; expected one of {sorted(BLOCK_TOKENS)}")
        if not isinstance(self.content, str):
            raise LCEFormatError(f"{self.kind} block content must be a string, got {type(self.content).__name__}")


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: Role
    blocks: tuple[Block, ...]

    def __post_init__(self) -> None:
        if self.role not in ROLE_TOKENS:
            raise LCEFormatError(f"unknown role {self.role!r}; expected one of {sorted(ROLE_TOKENS)}")
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.role != "assistant":
            kinds = {block.kind for block in self.blocks}
            if kinds - {"text"}:
                raise LCEFormatError(f"a {self.role} message may only hold text blocks, got {sorted(kinds)}")

    @property
    def text(self) -> str:
        """The concatenated text blocks (for system and user messages: the whole content)."""
        return "".join(block.content for block in self.blocks if block.kind == "text")


def text_message(role: Role, content: str) -> Message:
    """A message made of a single text block (how system prompts and questions are written)."""
    return Message(role=role, blocks=(Block("text", content),))


def find_marker(content: str) -> str | None:
    """The first LCE marker found inside ``content``, or None."""
    match = _MARKER_PATTERN.search(content)
    return match.group(0) if match else None


def serialize_block(block: Block) -> str:
    marker = find_marker(block.content)
    if marker is not None:
        raise LCEFormatError(f"{block.kind} block content contains the marker {marker}: {block.content[:80]!r}")
    return f"{BLOCK_TOKENS[block.kind]}{block.content}{END_OF_BLOCK}"


def serialize_message(message: Message) -> str:
    return ROLE_TOKENS[message.role] + "".join(serialize_block(block) for block in message.blocks) + END_OF_MESSAGE


def serialize_conversation(messages: Iterable[Message]) -> str:
    return "".join(serialize_message(message) for message in messages)


def render_prompt(messages: Sequence[Message]) -> str:
    """The generation prompt: the conversation so far (ending on a user turn) followed by ``<|assistant|>``."""
    if not messages or messages[-1].role != "user":
        raise LCEFormatError("a generation prompt must end with a user message")
    return serialize_conversation(messages) + ASSISTANT_TOKEN


def build_conversation(question: str, system: str = "", solution: Sequence[Block] | None = None) -> list[Message]:
    """System + user (+ assistant) messages as MathCoder trains and prompts (the system turn is kept when empty)."""
    messages = [text_message("system", system), text_message("user", question)]
    if solution is not None:
        messages.append(Message("assistant", tuple(solution)))
    return messages


def split_markers(text: str) -> list[str]:
    """``text`` cut into alternating literal pieces and markers (empty pieces dropped)."""
    return [piece for piece in _MARKER_PATTERN.split(text) if piece]


def parse_conversation(text: str) -> list[Message]:
    """Parse a serialized conversation; strict: any marker out of place raises :class:`LCEFormatError`."""
    pieces = split_markers(text)
    messages: list[Message] = []
    position = 0

    def where() -> str:
        consumed = "".join(pieces[:position])
        return f"at character {len(consumed)}"

    while position < len(pieces):
        role_token = pieces[position]
        if role_token not in ROLE_BY_TOKEN:
            raise LCEFormatError(f"expected a role marker {where()}, found {role_token[:40]!r}")
        position += 1
        blocks: list[Block] = []
        while True:
            if position >= len(pieces):
                raise LCEFormatError(f"message not closed by {END_OF_MESSAGE} {where()}")
            piece = pieces[position]
            if piece == END_OF_MESSAGE:
                position += 1
                break
            if piece not in KIND_BY_TOKEN:
                raise LCEFormatError(f"expected a block marker or {END_OF_MESSAGE} {where()}, found {piece[:40]!r}")
            position += 1
            content = ""
            if position < len(pieces) and pieces[position] not in LCE_SPECIAL_TOKENS:
                content = pieces[position]
                position += 1
            if position >= len(pieces) or pieces[position] != END_OF_BLOCK:
                raise LCEFormatError(f"{piece} block not closed by {END_OF_BLOCK} {where()}")
            position += 1
            blocks.append(Block(KIND_BY_TOKEN[piece], content))
        messages.append(Message(ROLE_BY_TOKEN[role_token], tuple(blocks)))
    return messages


# --- chat messages -------------------------------------------------------------------------------------------------


def _blocks_from_content(role: str, content: Any) -> tuple[Block, ...]:
    if isinstance(content, str):
        if role == "assistant":
            return blocks_from_assistant_text(content)
        return (Block("text", content),)
    if isinstance(content, Sequence):
        blocks = []
        for index, part in enumerate(content):
            if not isinstance(part, Mapping):
                raise LCEFormatError(f"content part {index} must be a mapping, got {type(part).__name__}")
            kind = part.get("type")
            text = part.get("content", part.get("text"))
            if kind not in BLOCK_TOKENS:
                raise LCEFormatError(f"content part {index} has type {kind!r}; expected one of {sorted(BLOCK_TOKENS)}")
            if not isinstance(text, str):
                raise LCEFormatError(f"content part {index} ({kind}) has no string 'content'")
            blocks.append(Block(kind, text))
        return tuple(blocks)
    raise LCEFormatError(f"message content must be a string or a list of parts, got {type(content).__name__}")


def blocks_from_assistant_text(text: str) -> tuple[Block, ...]:
    """An assistant answer given as one string: LCE markers if it has any, else the ```python/```output style."""
    if find_marker(text) is not None:
        (message,) = parse_conversation(
            ASSISTANT_TOKEN + text + ("" if text.endswith(END_OF_MESSAGE) else END_OF_MESSAGE)
        )
        return message.blocks
    return blocks_from_tir(text)


def from_chat_messages(chat: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Chat messages (``role`` + string or typed-part ``content``) to LCE messages; errors name the message index."""
    messages = []
    for index, item in enumerate(chat):
        if not isinstance(item, Mapping):
            raise LCEFormatError(f"message {index}: expected a mapping with 'role' and 'content'")
        role = item.get("role")
        if role not in ROLE_TOKENS:
            raise LCEFormatError(f"message {index}: role {role!r} is not one of {sorted(ROLE_TOKENS)}")
        try:
            messages.append(Message(role, _blocks_from_content(role, item.get("content"))))
        except LCEFormatError as error:
            raise LCEFormatError(f"message {index} ({role}): {error}", error.reason) from error
    return messages


def to_chat_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """LCE messages to chat messages with typed parts (the MathCodeInstruct layout); inverse of the function above."""
    return [
        {"role": message.role, "content": [{"type": block.kind, "content": block.content} for block in message.blocks]}
        for message in messages
    ]


# --- tool-integrated Markdown (```python / ```output) --------------------------------------------------------------

#: Opening fence of a code block the interpreter runs, and of the output block the interpreter writes after it.
CODE_FENCE = "```python"
OUTPUT_FENCE = "```output"
_FENCE_PATTERN = re.compile(r"```(python|output)[ \t]*\n(.*?)\n?```", re.DOTALL)


def blocks_from_tir(text: str) -> tuple[Block, ...]:
    """Markdown with ```` ```python ```` / ```` ```output ```` fences to blocks.

    Text between fences becomes a text block with surrounding whitespace stripped (empty ones vanish: the blank line
    between a code fence and its output fence is layout, not reasoning). An output fence must follow a code fence
    (reason ``output_without_code``), and every fence must be closed (``unclosed_code_fence``).
    """
    blocks: list[Block] = []
    cursor = 0
    for match in _FENCE_PATTERN.finditer(text):
        prose = text[cursor : match.start()].strip()
        if prose:
            blocks.append(Block("text", prose))
        kind: BlockKind = "code" if match.group(1) == "python" else "execution"
        if kind == "execution" and (not blocks or blocks[-1].kind != "code"):
            raise LCEFormatError(
                f"an ```output fence at character {match.start()} does not follow a ```python fence",
                "output_without_code",
            )
        blocks.append(Block(kind, match.group(2)))
        cursor = match.end()
    tail = text[cursor:].strip()
    if tail:
        for fence in (CODE_FENCE, OUTPUT_FENCE):
            if fence in tail:
                raise LCEFormatError(
                    f"a {fence} fence near character {cursor + text[cursor:].index(fence)} is never closed: "
                    f"{tail[:60]!r}",
                    "unclosed_code_fence",
                )
        blocks.append(Block("text", tail))
    return tuple(blocks)


def interpreter_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of tool-integrated Markdown that the interpreter writes, not the model.

    Each span starts right after an ```` ```output ```` marker (the model writes the marker: it is where generation
    stops for the code to run) and covers the output, the closing fence and the whitespace after it, which the
    inference loop appends. Spans end before the next non-space character, so they never split a word.
    """
    spans = []
    for match in _FENCE_PATTERN.finditer(text):
        if match.group(1) != "output":
            continue
        end = match.end()
        while end < len(text) and text[end].isspace():
            end += 1
        spans.append((match.start() + len(OUTPUT_FENCE), end))
    return spans


def blocks_to_tir(blocks: Iterable[Block]) -> str:
    """Blocks to the tool-integrated Markdown style; text blocks are separated from fences by a blank line."""
    parts: list[str] = []
    for block in blocks:
        if block.kind == "text":
            parts.append(("\n\n" if parts else "") + block.content.strip())
        elif block.kind == "code":
            parts.append(("\n\n" if parts else "") + f"```python\n{block.content}\n```")
        else:
            parts.append(f"\n```output\n{block.content}\n```")
    return "".join(parts)


def to_tir_messages(messages: Iterable[Message]) -> list[dict[str, str]]:
    """LCE messages to chat messages with string content in the NuminaMath-TIR style (system turn dropped if empty)."""
    result = []
    for message in messages:
        if message.role == "system" and not message.text:
            continue
        content = blocks_to_tir(message.blocks) if message.role == "assistant" else message.text
        result.append({"role": message.role, "content": content})
    return result


def from_tir_messages(chat: Sequence[Mapping[str, Any]], system: str = "") -> list[Message]:
    """NuminaMath-TIR style chat messages to LCE messages; adds the (possibly empty) system turn MathCoder uses."""
    messages = from_chat_messages(chat)
    if not messages or messages[0].role != "system":
        messages.insert(0, text_message("system", system))
    return messages
