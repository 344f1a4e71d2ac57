"""Block syntaxes: how the one inference engine, label rule and dataset loader read and write a solution.

A syntax is a small object; everything else is shared (the loop and backends of :mod:`evaluation.lce`, the
token-level alignment of :func:`mathcode_pile.lce.labels.tokenize_segments`, the counted drops of
:mod:`mathcode_pile.lce.dataset`). Two exist:

- :data:`LCE_SYNTAX`, MathCoder's ``<|text|>`` / ``<|code|>`` / ``<|execution|>`` blocks closed by ``<|endofblock|>``,
  conversations serialized with role markers (:mod:`mathcode_pile.lce.format`);
- :class:`FencedSyntax`, tool-integrated Markdown as in NuminaMath-TIR: ```` ```python ```` blocks whose output follows
  in an ```` ```output ```` block, conversations rendered by the model's chat template. Generation stops at the output
  fence, the loop runs the code and appends the output. With ``execute=False`` it is plain chain-of-thought: the
  same prompts, nothing run.

What a syntax answers: the prompt of a question, the stop strings, how one generation reads (blocks, code to run, end
of the answer, or why the solution cannot go on), what the prompt grows by, and how a training row is cut into
trained and untrained segments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mathcode_pile.lce.format import (
    BLOCK_TOKENS,
    CODE_FENCE,
    CODE_TOKEN,
    END_OF_BLOCK,
    END_OF_MESSAGE,
    EXECUTION_TOKEN,
    KIND_BY_TOKEN,
    LCE_SPECIAL_TOKENS,
    OUTPUT_FENCE,
    TEXT_TOKEN,
    Block,
    LCEFormatError,
    Message,
    blocks_from_tir,
    build_conversation,
    from_chat_messages,
    interpreter_spans,
    parse_conversation,
    render_prompt,
    serialize_block,
    split_markers,
    text_message,
)
from mathcode_pile.lce.labels import Segment, conversation_segments
from mathcode_pile.lce.variants import SOLUTION_FORMATS, conversation_as

#: Finish reasons of a solution that gives no answer to grade, whatever text it holds: a code block never closed, more
#: code calls than allowed, a failed backend or sandbox.
NO_ANSWER_FINISH_REASONS = frozenset({"unclosed_code", "call_cap", "error"})


@dataclass(frozen=True)
class GenerationStep:
    """One generation read against a syntax.

    ``prompt_text`` is what the prompt grows by (the model's text as the model should see it next time); ``code`` is
    the block to run now, its output then appended; ``failure`` is the finish reason of a solution that cannot go on.
    """

    blocks: tuple[Block, ...]
    prompt_text: str
    code: str | None = None
    end_of_message: bool = False
    failure: str | None = None
    detail: str | None = None


# --- LCE ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedBlock:
    """A generation read against the LCE grammar: the block it holds (if any) and whether the message ended."""

    block: Block | None
    end_of_message: bool
    malformed: str | None = None


def parse_generation(text: str, stopped: bool) -> ParsedBlock:
    """Read one LCE generation; tolerant of a missing trailing marker (servers that strip the stop string).

    Servers differ in whether returned text keeps the stop marker (TGI does, OpenAI-compatible servers do not), so the
    grammar decides: a non-empty generation ended by a stop is a finished block, an empty one is the end of the
    message.
    """
    pieces = split_markers(text.lstrip())
    if not pieces or (len(pieces) == 1 and pieces[0] == END_OF_MESSAGE):
        if stopped:
            return ParsedBlock(block=None, end_of_message=True)
        return ParsedBlock(block=None, end_of_message=False, malformed="empty generation")
    opening = pieces[0]
    if opening == END_OF_MESSAGE:
        return ParsedBlock(block=None, end_of_message=True)
    if opening not in KIND_BY_TOKEN:
        return ParsedBlock(None, False, malformed=f"block starts without a block marker: {text[:60]!r}")
    kind = KIND_BY_TOKEN[opening]
    if kind == "execution":
        return ParsedBlock(None, False, malformed="the model wrote an execution block itself")
    rest = pieces[1:]
    content = ""
    if rest and rest[0] not in BLOCK_TOKENS.values() and rest[0] not in (END_OF_BLOCK, END_OF_MESSAGE):
        content, rest = rest[0], rest[1:]
    if rest and rest[0] not in (END_OF_BLOCK, END_OF_MESSAGE):
        return ParsedBlock(Block(kind, content), False, malformed=f"unexpected {rest[0]} inside a {kind} block")
    if not rest and not stopped:
        return ParsedBlock(Block(kind, content), False, malformed=f"{kind} block hit the token cap")
    ends_message = END_OF_MESSAGE in rest
    return ParsedBlock(Block(kind, content), end_of_message=ends_message)


def conversation_from_row(row: Mapping[str, Any]) -> list[Message]:
    """The LCE conversation of a dataset row: ``messages`` (typed parts or strings) or a serialized ``text``."""
    if row.get("messages") is not None:
        messages = from_chat_messages(row["messages"])
    elif row.get("text") is not None:
        messages = parse_conversation(row["text"])
    else:
        raise LCEFormatError(f"row has none of the columns {list(LCESyntax.columns)}")
    if not messages or messages[0].role != "system":
        messages.insert(0, text_message("system", ""))
    return messages


def has_model_written_block(messages: Sequence[Message]) -> bool:
    """True when an assistant turn holds a text or code block (execution output alone teaches nothing)."""
    return any(
        block.kind != "execution" for message in messages if message.role == "assistant" for block in message.blocks
    )


@dataclass(frozen=True)
class LCESyntax:
    """MathCoder's marker format (see :mod:`mathcode_pile.lce.format` and :mod:`mathcode_pile.lce.labels`).

    For MathCoder's ablations a training row can be read as a CoT or PoT solution instead (``solution_format``,
    converted by :mod:`mathcode_pile.lce.variants`) and trained with execution output in the loss
    (``mask_execution=False``); inference only uses the default.
    """

    solution_format: str = "lce"
    mask_execution: bool = True

    name: ClassVar[str] = "lce"
    stop_strings: ClassVar[tuple[str, ...]] = (END_OF_BLOCK, END_OF_MESSAGE)
    #: How a generated block may begin; anything else is malformed and not worth more tokens.
    block_openers: ClassVar[tuple[str, ...]] = (TEXT_TOKEN, CODE_TOKEN, EXECUTION_TOKEN, END_OF_MESSAGE)
    #: Added tokens a model trained in this syntax has; generation then stops on their ids.
    marker_tokens: ClassVar[tuple[str, ...]] = LCE_SPECIAL_TOKENS
    message_end: ClassVar[str] = END_OF_MESSAGE
    executes: ClassVar[bool] = True
    columns: ClassVar[tuple[str, ...]] = ("messages", "text")

    def render_prompt(self, question: str, system: str = "") -> str:
        return render_prompt(build_conversation(question, system=system))

    def read_generation(self, text: str, stopped: bool) -> GenerationStep:
        parsed = parse_generation(text, stopped)
        blocks = (parsed.block,) if parsed.block is not None else ()
        prompt_text = serialize_block(parsed.block) if parsed.block is not None else ""
        if parsed.malformed is not None:
            return GenerationStep(blocks, prompt_text, failure="malformed", detail=parsed.malformed)
        code = parsed.block.content if parsed.block is not None and parsed.block.kind == "code" else None
        return GenerationStep(blocks, prompt_text, code=code, end_of_message=parsed.end_of_message)

    def execution_text(self, output: str) -> str:
        return serialize_block(Block("execution", output))

    def row_segments(self, row: Mapping[str, Any]) -> list[Segment]:
        messages = conversation_as(conversation_from_row(row), self.solution_format)
        if not any(message.role == "assistant" for message in messages):
            raise LCEFormatError("the conversation has no assistant turn", "no_assistant_turn")
        if not has_model_written_block(messages):
            raise LCEFormatError("no text or code block in any assistant turn", "no_text_or_code")
        return conversation_segments(messages, self.mask_execution)


LCE_SYNTAX = LCESyntax()


# --- fenced Markdown through a chat template ------------------------------------------------------------------------


class ChatTemplate:
    """A tokenizer's chat template as a function of (messages, add_generation_prompt), picklable for worker
    processes."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer of {getattr(tokenizer, 'name_or_path', 'this model')} has no chat template: name one "
                "(a .jinja file, e.g. training/chat_templates/user_assistant.jinja) with chat_template_path"
            )
        self.tokenizer = tokenizer

    def __call__(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )


ROLES = ("system", "user", "assistant")


def chat_from_row(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """Chat messages with string content from a NuminaMath-style row: ``messages``, else ``problem`` + ``solution``."""
    raw = row.get("messages")
    if raw is None:
        problem, solution = row.get("problem"), row.get("solution")
        if not isinstance(problem, str) or not isinstance(solution, str):
            raise LCEFormatError("row has no 'messages' and no 'problem' + 'solution' strings")
        raw = [{"role": "user", "content": problem}, {"role": "assistant", "content": solution}]
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise LCEFormatError(f"'messages' must be a list of messages, got {type(raw).__name__}")
    chat = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or item.get("role") not in ROLES:
            raise LCEFormatError(f"message {index}: expected a mapping with role in {list(ROLES)}")
        if not isinstance(item.get("content"), str):
            raise LCEFormatError(f"message {index} ({item['role']}): content must be a string")
        chat.append({"role": str(item["role"]), "content": str(item["content"])})
    return chat


@dataclass(frozen=True)
class FencedSyntax:
    """Tool-integrated Markdown (```` ```python ```` / ```` ```output ````) in the model's own chat template.

    ``render_chat`` renders chat messages (a :class:`ChatTemplate`); ``execute=False`` turns the syntax into plain
    chain-of-thought: no stop at the output fence, no code run, the whole generation is the answer.
    """

    render_chat: Any
    execute: bool = True
    #: False trains the content of ```` ```output ```` blocks too (the execution-in-loss ablation, fenced)
    mask_execution: bool = True
    name: str = field(default="fenced", init=False)
    block_openers: tuple[str, ...] = field(default=(), init=False)
    marker_tokens: tuple[str, ...] = field(default=(), init=False)
    message_end: str = field(default="", init=False)
    columns: tuple[str, ...] = field(default=("messages", "problem", "solution"), init=False)

    @property
    def executes(self) -> bool:
        return self.execute

    @property
    def stop_strings(self) -> tuple[str, ...]:
        return (OUTPUT_FENCE,) if self.execute else ()

    def render_prompt(self, question: str, system: str = "") -> str:
        messages = [{"role": "system", "content": system}] if system else []
        return self.render_chat([*messages, {"role": "user", "content": question}], True)

    def read_generation(self, text: str, stopped: bool) -> GenerationStep:
        """Blocks of one generation; a closed ```` ```python ```` block at its end (stopped at the output fence, or
        at the end of the turn) is the code to run. A fence left open ends the solution as ``unclosed_code``; a
        generation cut by the token cap ends it as ``token_cap`` (graded on what it holds)."""
        if self.execute and text.endswith(OUTPUT_FENCE):
            text = text[: -len(OUTPUT_FENCE)]
        if not self.execute:
            blocks = (Block("text", text.strip()),) if text.strip() else ()
            failure = None if stopped else "token_cap"
            return GenerationStep(blocks, text, end_of_message=stopped, failure=failure)
        try:
            blocks = blocks_from_tir(text)
        except LCEFormatError as error:
            if error.reason != "unclosed_code_fence":
                return GenerationStep((Block("text", text),), text, failure="malformed", detail=str(error))
            prose, _, code = text.rpartition(CODE_FENCE)
            partial = ((Block("text", prose.strip()),) if prose.strip() else ()) + (Block("code", code.lstrip("\n")),)
            return GenerationStep(partial, text, failure="unclosed_code", detail=str(error))
        if not stopped:
            return GenerationStep(blocks, text, failure="token_cap", detail="the generation hit the token cap")
        if blocks and blocks[-1].kind == "code" and text.rstrip().endswith("```"):
            prompt_text = text if text.endswith("\n") else text + "\n"
            return GenerationStep(blocks, prompt_text, code=blocks[-1].content)
        return GenerationStep(blocks, text, end_of_message=True)

    def execution_text(self, output: str) -> str:
        return f"{OUTPUT_FENCE}\n{output}\n```\n"

    def row_segments(self, row: Mapping[str, Any]) -> list[Segment]:
        chat = chat_from_row(row)
        if not any(message["role"] == "assistant" for message in chat):
            raise LCEFormatError("the conversation has no assistant turn", "no_assistant_turn")
        for message in chat:
            if message["role"] == "assistant" and self.execute:
                blocks_from_tir(message["content"])  # raises for unclosed fences and output without code
            if message["role"] == "assistant" and not message["content"].strip():
                raise LCEFormatError("an assistant turn is empty", "no_text_or_code")
        return chat_segments(chat, self.render_chat, mask_interpreter=self.execute and self.mask_execution)


def chat_segments(chat: Sequence[Mapping[str, str]], render_chat: Any, mask_interpreter: bool = True) -> list[Segment]:
    """A chat conversation rendered by its template, cut into trained and untrained segments.

    Each assistant turn spans from the end of the generation prompt before it (``add_generation_prompt=True``) to
    the end of the conversation rendered through that turn: the answer plus whatever the template closes a turn with
    (an end-of-turn token), which the model must learn to emit. Everything else (system and user turns, the
    generation prompt) is untrained, and so is every interpreter span inside an answer
    (:func:`mathcode_pile.lce.format.interpreter_spans`). The template must render turns as a growing prefix, which
    chat templates do; one that does not is an error rather than a guessed mask.
    """
    segments: list[Segment] = []
    done = ""
    for index, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        prompt = render_chat(chat[:index], True)
        through = render_chat(chat[: index + 1], False)
        if not prompt.startswith(done) or not through.startswith(prompt):
            raise LCEFormatError(
                f"the chat template does not render message {index} as a continuation of the turns before it; "
                "labels cannot be aligned",
                "chat_template_mismatch",
            )
        segments.append(Segment(prompt[len(done) :], trained=False))
        answer = through[len(prompt) :]
        cursor = 0
        for start, end in interpreter_spans(answer) if mask_interpreter else []:
            segments += [Segment(answer[cursor:start], trained=True), Segment(answer[start:end], trained=False)]
            cursor = end
        segments.append(Segment(answer[cursor:], trained=True))
        done = through
    whole = render_chat(chat, False)
    if not whole.startswith(done):
        raise LCEFormatError("the chat template renders the whole conversation differently", "chat_template_mismatch")
    segments.append(Segment(whole[len(done) :], trained=False))
    return [segment for segment in segments if segment.text]


def syntax_for(
    name: str,
    tokenizer: Any = None,
    execute: bool = True,
    solution_format: str = "lce",
    mask_execution: bool = True,
) -> LCESyntax | FencedSyntax:
    """The syntax a training recipe or evaluation names: ``lce``, or ``chat`` (fenced, through the chat template).

    ``solution_format`` (``lce``, ``cot``, ``pot``) re-reads LCE rows for MathCoder's ablations; fenced rows are
    NuminaMath's own format and have no such variants.
    """
    if solution_format not in SOLUTION_FORMATS:
        raise ValueError(f"unknown solution format {solution_format!r}; choose from {list(SOLUTION_FORMATS)}")
    if name == "lce":
        return LCESyntax(solution_format, mask_execution)
    if name == "chat":
        if solution_format != "lce":
            raise ValueError("solution_format cot/pot re-reads LCE rows; with conversation_format 'chat' keep 'lce'")
        return FencedSyntax(ChatTemplate(tokenizer), execute=execute, mask_execution=mask_execution)
    raise ValueError(f"unknown conversation format {name!r}; choose 'lce' or 'chat'")
