"""Where generations come from: a local transformers model, or a served model through the project's LLM client.

A backend continues a raw prompt by one step: it stops on the stop strings of the block syntax it is given
(``<|endofblock|>`` / ``<|endofmessage|>`` for LCE, the ```` ```output ```` fence for fenced Markdown, none for
chain-of-thought) or the model's EOS, or at ``max_new_tokens``. It never shortens the prompt: servers that truncate
from the left (TGI's ``truncate``, which MathCoder's released loop set) would silently cut the question away once a
solution grows. Instead the backend
reports how many tokens the prompt takes, and the inference loop ends a solution whose prompt fills the context.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from mathcode_pile.lce.syntax import LCE_SYNTAX

logger = logging.getLogger(__name__)

#: Finish reasons that mean "a stop marker or EOS ended the text" across TGI ("stop_sequence", "eos_token") and
#: OpenAI-compatible servers ("stop").
STOPPED_REASONS = frozenset(
    {"stop_sequence", "eos_token", "stop", "FinishReason.stop_sequence", "FinishReason.eos_token"}
)


@dataclass(frozen=True)
class Generation:
    """One continuation: its text (markers kept where the backend can) and whether it ended on a stop."""

    text: str
    stopped: bool


class GenerationBackend(Protocol):
    """What the inference loop needs from a model."""

    context_length: int

    def count_tokens(self, prompt: str) -> int | None:
        """Tokens the prompt takes, or None when the backend cannot tell (then the server is the judge)."""

    async def generate(self, prompt: str, max_new_tokens: int) -> Generation: ...


def starts_like_a_block(text: str, openers: tuple[str, ...] = LCE_SYNTAX.block_openers) -> bool:
    """True while ``text`` (leading whitespace aside) is, or may still become, the start of a block."""
    text = text.lstrip()
    return any(text.startswith(opener) or opener.startswith(text) for opener in openers)


def add_special_tokens_for(tokenizer: Any, prompt: str) -> bool:
    """Whether tokenizing ``prompt`` should add the tokenizer's specials: not when a chat template already wrote the
    BOS, which would then appear twice."""
    bos = getattr(tokenizer, "bos_token", None)
    return not (bos and prompt.startswith(bos))


def make_block_start_criteria(tokenizer: Any, prompt_width: int, openers: tuple[str, ...]) -> Any:
    """A stopping criterion ending each sequence whose first tokens cannot open a block.

    A trained LCE model always starts a block with a marker; a model that does not (an untuned base model in a smoke
    run) would otherwise spend the whole token budget on a block the loop then discards as malformed.
    """
    import torch
    from transformers import StoppingCriteria

    longest = max(len(opener) for opener in openers)

    class BlockStartCriteria(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
            verdicts = []
            for row in input_ids[:, prompt_width:].tolist():
                text = tokenizer.decode(row, skip_special_tokens=True)
                decided = len(text.lstrip()) >= longest
                verdicts.append(not decided and not starts_like_a_block(text, openers))
            return torch.tensor(verdicts, dtype=torch.bool, device=input_ids.device)

    return BlockStartCriteria()


def end_of_turn_ids(tokenizer: Any, model: Any) -> list[int]:
    """Token ids that end a model's turn: the tokenizer's EOS and every EOS of the model's generation config."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for token_id in configured if isinstance(configured, list) else [configured]:
        if token_id is not None and token_id not in ids:
            ids.append(int(token_id))
    return ids


class TransformersBackend:
    """Greedy decoding with a local ``AutoModelForCausalLM``, batching the blocks that concurrent problems ask for.

    Problems solved at the same time queue their next block; the queue is drained in batches of up to
    ``max_batch_size`` left-padded prompts, one ``generate`` call each, run off the event loop. Each sequence stops on
    its own: on the syntax's markers when the tokenizer has them as tokens (an LCE-trained model), else on its stop
    strings (the output fence; LCE markers of any other model, e.g. for smoke tests of the loop), and on the model's
    end-of-turn tokens. A sequence whose first characters cannot open a block of a syntax that has block openers is
    stopped early (``stop_malformed_starts``).
    """

    #: How long a batch waits for more problems to queue a block (their code may be finishing).
    COLLECT_WINDOW_S = 0.01

    def __init__(
        self,
        model_name_or_path: str,
        context_length: int = 2048,
        device: str | None = None,
        dtype: str = "auto",
        max_batch_size: int = 8,
        stop_malformed_starts: bool = True,
        syntax: Any = LCE_SYNTAX,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from mathcode_pile.lce.tokens import stop_token_ids

        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_name_or_path, dtype=dtype).to(self.device).eval()
        model_positions = getattr(self.model.config, "max_position_embeddings", None) or context_length
        self.context_length = min(context_length, int(model_positions))
        self.max_batch_size = max_batch_size
        self.syntax = syntax
        self.stop_malformed_starts = stop_malformed_starts and bool(syntax.block_openers)
        self.stop_strings = list(syntax.stop_strings)
        vocabulary = self.tokenizer.get_vocab()
        self.has_markers = bool(syntax.marker_tokens) and all(token in vocabulary for token in syntax.marker_tokens)
        if self.has_markers:
            self.stop_ids = stop_token_ids(self.tokenizer)
        else:
            if syntax.marker_tokens:
                logger.warning("%s has no LCE marker tokens: stopping on marker strings instead", model_name_or_path)
            self.stop_ids = end_of_turn_ids(self.tokenizer, self.model)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        self._pending: list[tuple[str, int, asyncio.Future[Generation]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []

    def _encode(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=add_special_tokens_for(self.tokenizer, prompt))["input_ids"]

    def count_tokens(self, prompt: str) -> int | None:
        return len(self._encode(prompt))

    def _finish(self, new_ids: list[int], budget: int) -> Generation:
        """One sequence's text: cut after its first stop (within its own token budget)."""
        new_ids = new_ids[:budget]
        for position, token_id in enumerate(new_ids):
            if token_id in self.stop_ids:
                text = self.tokenizer.decode(new_ids[: position + 1], skip_special_tokens=True)
                return Generation(text=text, stopped=True)
        text = self.tokenizer.decode([t for t in new_ids if t != self.pad_id], skip_special_tokens=True)
        ends = [text.find(marker) + len(marker) for marker in self.stop_strings if marker in text]
        if ends:
            return Generation(text=text[: min(ends)], stopped=True)
        return Generation(text=text, stopped=False)

    def generate_batch(self, requests: list[tuple[str, int]]) -> list[Generation]:
        """Continue several prompts at once (greedy); blocking, one batch at a time."""
        import torch

        encoded = [self._encode(prompt) for prompt, _ in requests]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in encoded], device=self.device)
        attention_mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=self.device
        )
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(budget for _, budget in requests),
            "do_sample": False,
            "eos_token_id": self.stop_ids or None,
            "pad_token_id": self.pad_id,
        }
        if not self.has_markers and self.stop_strings:
            kwargs.update(stop_strings=self.stop_strings, tokenizer=self.tokenizer)
        if self.stop_malformed_starts:
            kwargs["stopping_criteria"] = [make_block_start_criteria(self.tokenizer, width, self.syntax.block_openers)]
        with self._lock, torch.inference_mode():
            output = self.model.generate(input_ids, attention_mask=attention_mask, **kwargs)
        self.batch_sizes.append(len(requests))
        return [self._finish(row[width:].tolist(), budget) for row, (_, budget) in zip(output, requests, strict=True)]

    async def generate(self, prompt: str, max_new_tokens: int) -> Generation:
        future: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        self._pending.append((prompt, max_new_tokens, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(self.COLLECT_WINDOW_S)
            batch, self._pending = self._pending[: self.max_batch_size], self._pending[self.max_batch_size :]
            try:
                results = await asyncio.to_thread(self.generate_batch, [(p, n) for p, n, _ in batch])
            except Exception as error:  # every waiting problem learns why (and records it)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


#: LLM client modes that continue a raw prompt: TGI's ``generate`` route and OpenAI-compatible ``/v1/completions``.
RAW_PROMPT_MODES = ("text_generation", "completions")


class EndpointBackend:
    """Raw-prompt continuation on a served model: TGI's ``generate`` route (``llm_mode='text_generation'``) or any
    OpenAI-compatible ``/v1/completions`` route (``llm_mode='completions'``: vLLM, llama.cpp, SGLang, TGI).

    The client brings bounded concurrency, retries and the request cache, so many problems can be in flight at once
    and a rerun pays for nothing twice. Chat endpoints cannot continue a half-written assistant turn in the LCE
    format, hence the mode check. OpenAI-compatible servers leave the matched stop marker out of the text; the
    loop's grammar reads such blocks all the same. Give a tokenizer to count prompt tokens locally; without one a
    prompt longer than the server accepts comes back as a request error, which the loop records for that problem.
    """

    def __init__(
        self,
        client: Any,
        context_length: int = 2048,
        tokenizer: Any | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        syntax: Any = LCE_SYNTAX,
    ) -> None:
        if client.config.llm_mode not in RAW_PROMPT_MODES:
            raise ValueError(
                "LCE inference continues a raw prompt block by block: use llm_mode='text_generation' (TGI) or "
                f"llm_mode='completions' (OpenAI-compatible /v1/completions), not llm_mode={client.config.llm_mode!r}"
            )
        self.client = client
        self.context_length = context_length
        self.tokenizer = tokenizer
        # sampled solutions (self-distillation) differ by seed, which is part of the request cache key
        self.temperature = temperature
        self.seed = seed
        self.stop_strings = list(syntax.stop_strings)

    def count_tokens(self, prompt: str) -> int | None:
        if self.tokenizer is None:
            return None
        encoded = self.tokenizer(prompt, add_special_tokens=add_special_tokens_for(self.tokenizer, prompt))
        return len(encoded["input_ids"])

    async def generate(self, prompt: str, max_new_tokens: int) -> Generation:
        response = await self.client.generate(
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            temperature=self.temperature,
            stop=list(self.stop_strings),
            seed=self.seed,
        )
        text = response.text
        stopped = (response.finish_reason or "") in STOPPED_REASONS or (
            bool(self.stop_strings) and text.endswith(tuple(self.stop_strings))
        )
        return Generation(text=text, stopped=stopped)
