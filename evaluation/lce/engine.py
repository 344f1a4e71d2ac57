"""The LCE inference loop: generate a block, run it when it is code, append the output, repeat.

For each problem: the prompt is MathCoder's (empty system turn, the question, ``<|assistant|>``). The backend writes
one block and stops on ``<|endofblock|>``; a code block is executed in that problem's own stateful Python session
(variables persist from block to block, as in a notebook) and its output is appended as an execution block; the
model then writes the next block, until it closes the message with ``<|endofmessage|>``, reaches the block cap
(32, the paper's), or the prompt fills the context. The question is never cut: the prompt is never shortened, a
block's token budget shrinks to fit instead, and a solution that no longer fits ends as ``context_full``.

Servers differ in whether returned text keeps the stop marker (TGI does, OpenAI-compatible servers do not), so the
grammar decides: a non-empty generation ended by a stop is a finished block, an empty one is the end of the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from evaluation.lce.backends import GenerationBackend
from mathcode_pile.config import ValidatedConfig
from mathcode_pile.lce.format import (
    BLOCK_TOKENS,
    END_OF_BLOCK,
    END_OF_MESSAGE,
    KIND_BY_TOKEN,
    Block,
    build_conversation,
    render_prompt,
    serialize_block,
    split_markers,
)

logger = logging.getLogger(__name__)


@dataclass
class LCEInferenceConfig(ValidatedConfig):
    """Settings of the loop; defaults are the paper's (greedy, 512 new tokens per block, up to 32 blocks)."""

    max_blocks: int = field(default=32, metadata={"help": "Most blocks (text, code, execution) in one solution."})
    max_new_tokens_per_block: int = field(default=512, metadata={"help": "Token cap of one generated block."})
    context_length: int = field(
        default=2048, metadata={"help": "Prompt + block tokens the model may see (the SFT context is 2048)."}
    )
    system_prompt: str = field(default="", metadata={"help": "System turn text (MathCoder evaluates with none)."})
    execution_timeout_s: float = field(default=10.0, metadata={"help": "Wall time limit of one code block."})
    max_output_chars: int = field(
        default=2000, metadata={"help": "Execution output kept per block (head + tail); the rest is cut."}
    )
    max_concurrent_problems: int = field(default=8, metadata={"help": "Problems solved at once."})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_blocks", "max_new_tokens_per_block", "context_length", "max_concurrent_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class CodeSession(Protocol):
    """One problem's stateful interpreter: runs a cell, returns the text shown to the model."""

    def run(self, code: str) -> str: ...

    def close(self) -> None: ...


@dataclass
class LCESolution:
    """A solved (or abandoned) problem: the blocks written, why the loop stopped, and counters."""

    question: str
    blocks: list[Block] = field(default_factory=list)
    finish_reason: str = "unfinished"
    error: str | None = None
    counters: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def text(self) -> str:
        """The whole solution as readable text (for answer extraction that looks past the last block)."""
        return "\n".join(block.content for block in self.blocks if block.kind != "execution")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["blocks"] = [{"type": block.kind, "content": block.content} for block in self.blocks]
        data["counters"] = dict(self.counters)
        return data


@dataclass(frozen=True)
class ParsedBlock:
    """A generation read against the grammar: the block it holds (if any) and whether the message ended."""

    block: Block | None
    end_of_message: bool
    malformed: str | None = None


def parse_generation(text: str, stopped: bool) -> ParsedBlock:
    """Read one generation; tolerant of a missing trailing marker (servers that strip the stop string)."""
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


class LCEInferenceEngine:
    """Solves problems with one backend and one fresh code session per problem; many problems at once."""

    def __init__(
        self,
        backend: GenerationBackend,
        session_factory: Callable[[], CodeSession],
        config: LCEInferenceConfig | None = None,
        prompt_prefix: str = "",
    ) -> None:
        self.backend = backend
        self.session_factory = session_factory
        self.config = config or LCEInferenceConfig()
        #: Serialized example conversations put before each problem's own (few-shot prompting of a model that was not
        #: trained on the LCE format, e.g. a teacher writing training data).
        self.prompt_prefix = prompt_prefix

    async def solve(self, question: str) -> LCESolution:
        """Run the loop for one question; never raises for model or code failures (they end up in the record)."""
        started = time.monotonic()
        solution = LCESolution(question=question)
        prompt = self.prompt_prefix + render_prompt(build_conversation(question, system=self.config.system_prompt))
        session: CodeSession | None = None
        try:
            session = await asyncio.to_thread(self.session_factory)
            await self._run_loop(prompt, solution, session)
        except Exception as error:  # a backend or sandbox that failed for good: record it, keep the others going
            logger.warning("problem %r failed: %s", question[:60], error)
            solution.finish_reason = "error"
            solution.error = f"{type(error).__name__}: {error}"
        finally:
            if session is not None:
                await asyncio.to_thread(session.close)
            solution.seconds = time.monotonic() - started
        return solution

    async def _run_loop(self, prompt: str, solution: LCESolution, session: CodeSession) -> None:
        config = self.config
        while True:
            if len(solution.blocks) >= config.max_blocks:
                solution.finish_reason = "block_cap"
                return
            budget = config.max_new_tokens_per_block
            prompt_tokens = self.backend.count_tokens(prompt)
            if prompt_tokens is not None:
                budget = min(budget, self.backend.context_length - prompt_tokens)
                if budget < 1:
                    solution.finish_reason = "context_full"
                    return
            generation = await self.backend.generate(prompt, budget)
            solution.counters["generations"] += 1
            parsed = parse_generation(generation.text, generation.stopped)
            if parsed.block is not None:
                solution.blocks.append(parsed.block)
                solution.counters[f"{parsed.block.kind}_blocks"] += 1
                prompt += serialize_block(parsed.block)
            if parsed.malformed is not None:
                solution.finish_reason = "malformed"
                solution.error = parsed.malformed
                return
            if parsed.block is not None and parsed.block.kind == "code":
                output = await asyncio.to_thread(session.run, parsed.block.content)
                execution = Block("execution", output)
                solution.blocks.append(execution)
                solution.counters["execution_blocks"] += 1
                prompt += serialize_block(execution)
            if parsed.end_of_message:
                prompt += END_OF_MESSAGE
                solution.finish_reason = "end_of_message"
                return

    async def solve_many(self, questions: Sequence[str]) -> list[LCESolution]:
        """Solve every question with at most ``max_concurrent_problems`` in flight; results keep the input order."""
        semaphore = asyncio.Semaphore(self.config.max_concurrent_problems)

        async def bounded(question: str) -> LCESolution:
            async with semaphore:
                return await self.solve(question)

        return list(await asyncio.gather(*(bounded(question) for question in questions)))
