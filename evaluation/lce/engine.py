"""The inference loop of code-executing models: generate, run the code, append the output, repeat.

One engine serves every block syntax (:mod:`mathcode_pile.lce.syntax`): MathCoder's LCE blocks and the fenced
```` ```python ```` / ```` ```output ```` Markdown of tool-integrated models (TIR), or no execution at all
(chain-of-thought). For each problem the syntax writes the prompt (LCE: empty system turn, the question,
``<|assistant|>``; fenced: the model's chat template). The backend continues it until a stop string of the syntax
(``<|endofblock|>`` / ``<|endofmessage|>``, or the output fence) or the end of the turn; the syntax reads the
generation. Code to run goes to that problem's own stateful Python session (variables persist from block to block, as
in a notebook, opened at the first code block) and its output is appended in the syntax's execution form; the model
then goes on, until it ends its answer, reaches the block cap (32, MathCoder's), exceeds the code-call cap
(``max_code_calls``, ``call_cap``), leaves a code fence open (``unclosed_code``), or the prompt fills the context. The
question is never cut: the prompt is never shortened, a generation's token budget shrinks to fit instead, and a
solution that no longer fits ends as ``context_full``. Nothing waits without a bound: every generation has a token
budget and every code run a wall-time limit.
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
from mathcode_pile.lce.format import Block
from mathcode_pile.lce.syntax import LCE_SYNTAX, ParsedBlock, parse_generation

__all__ = ["CodeSession", "LCEInferenceConfig", "LCEInferenceEngine", "LCESolution", "ParsedBlock", "parse_generation"]

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
    max_code_calls: int | None = field(
        default=None,
        metadata={
            "help": "Most code runs in one solution; asking for one more ends it as 'call_cap', graded as no answer "
            "(default: no cap besides max_blocks)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_blocks", "max_new_tokens_per_block", "context_length", "max_concurrent_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_code_calls is not None and self.max_code_calls < 0:
            raise ValueError(f"max_code_calls must be >= 0, got {self.max_code_calls}")


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


class LCEInferenceEngine:
    """Solves problems with one backend, one block syntax and one fresh code session per problem; many at once."""

    def __init__(
        self,
        backend: GenerationBackend,
        session_factory: Callable[[], CodeSession],
        config: LCEInferenceConfig | None = None,
        prompt_prefix: str = "",
        syntax: Any = LCE_SYNTAX,
    ) -> None:
        self.backend = backend
        self.session_factory = session_factory
        self.config = config or LCEInferenceConfig()
        #: Serialized example conversations put before each problem's own (few-shot prompting of a model that was not
        #: trained on the LCE format, e.g. a teacher writing training data).
        self.prompt_prefix = prompt_prefix
        #: How prompts are written and generations read: LCE markers, or fenced Markdown in a chat template.
        self.syntax = syntax

    async def solve(self, question: str) -> LCESolution:
        """Run the loop for one question; never raises for model or code failures (they end up in the record)."""
        started = time.monotonic()
        solution = LCESolution(question=question)
        sessions: list[CodeSession] = []
        try:
            prompt = self.prompt_prefix + self.syntax.render_prompt(question, self.config.system_prompt)
            await self._run_loop(prompt, solution, sessions)
        except Exception as error:  # a backend or sandbox that failed for good: record it, keep the others going
            logger.warning("problem %r failed: %s", question[:60], error)
            solution.finish_reason = "error"
            solution.error = f"{type(error).__name__}: {error}"
        finally:
            for session in sessions:
                await asyncio.to_thread(session.close)
            solution.seconds = time.monotonic() - started
        return solution

    async def _run_code(self, code: str, sessions: list[CodeSession]) -> str:
        """Run a cell in the problem's session, opening it at the first cell (chain-of-thought never opens one)."""
        if not sessions:
            sessions.append(await asyncio.to_thread(self.session_factory))
        return await asyncio.to_thread(sessions[0].run, code)

    async def _run_loop(self, prompt: str, solution: LCESolution, sessions: list[CodeSession]) -> None:
        config, syntax = self.config, self.syntax
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
            step = syntax.read_generation(generation.text, generation.stopped)
            for block in step.blocks:
                solution.blocks.append(block)
                solution.counters[f"{block.kind}_blocks"] += 1
            prompt += step.prompt_text
            if step.failure is not None:
                solution.finish_reason = step.failure
                solution.error = step.detail
                return
            if step.code is not None and syntax.executes:
                if config.max_code_calls is not None and solution.counters["code_calls"] >= config.max_code_calls:
                    solution.finish_reason = "call_cap"
                    solution.error = f"the model asked for more than {config.max_code_calls} code call(s)"
                    return
                solution.counters["code_calls"] += 1
                output = await self._run_code(step.code, sessions)
                solution.blocks.append(Block("execution", output))
                solution.counters["execution_blocks"] += 1
                prompt += syntax.execution_text(output)
            if step.end_of_message:
                prompt += syntax.message_end
                solution.finish_reason = "end_of_message"
                return

    async def solve_many(self, questions: Sequence[str]) -> list[LCESolution]:
        """Solve every question with at most ``max_concurrent_problems`` in flight; results keep the input order."""
        semaphore = asyncio.Semaphore(self.config.max_concurrent_problems)

        async def bounded(question: str) -> LCESolution:
            async with semaphore:
                return await self.solve(question)

        return list(await asyncio.gather(*(bounded(question) for question in questions)))
