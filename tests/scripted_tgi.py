"""A scripted model behind TGI's HTTP API and the OpenAI-compatible ``/v1/completions`` and ``/v1/chat/completions``
routes, run as its own process on 127.0.0.1 for inference-loop and LLM-client tests.

The scripts file maps each question to the assistant's LCE answer *without* execution blocks (what a trained model
writes). For each request the server finds the question in the user turn, removes the execution blocks from the
assistant part of the prompt, checks that what is left is a prefix of that question's script, and answers with the
next piece up to and including the next stop marker, as TGI does with ``stop`` sequences (``/v1/completions`` leaves
the marker out, as OpenAI-compatible servers do). A prompt that strays from
its script gets HTTP 422, so a loop that builds its prompt wrongly fails loudly, unless the scripts hold an
``__any__`` answer, sent whole to every such prompt (what a client test needs: any prompt, a chosen answer). A chat
request is answered as the raw prompt ``<|user|><|text|>{last user message}<|endofblock|><|assistant|>``. Every
prompt received is appended to a JSON-lines log the test reads.

With ``--fences MARKER`` the scripts are fenced Markdown (tool-integrated reasoning in a chat template): the question
is the scripted one found last in the prompt, the assistant part starts after the last ``MARKER`` (the chat template's
generation prompt), what the interpreter appended after each ```` ```output ```` fence is removed, and the end of a
script is the end of the turn (TGI's ``eos_token``, ``stop`` on ``/v1/completions``), as a model ends its answer.

Usage: ``python tests/scripted_tgi.py --scripts scripts.json --port-file port.txt --log prompts.jsonl [--strip-stops]
[--fences MARKER]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

EXECUTION_BLOCK = re.compile(r"<\|execution\|>.*?<\|endofblock\|>", re.DOTALL)
USER_TEXT = re.compile(r"<\|user\|><\|text\|>(.*?)<\|endofblock\|>", re.DOTALL)
STOPS = ("<|endofblock|>", "<|endofmessage|>")
#: In fenced scripts: what the loop appends after the ```output marker (the output, its closing fence, a newline).
INTERPRETER_OUTPUT = re.compile(r"(?<=```output)\n.*?\n```\n", re.DOTALL)


#: Key of the scripts file holding the answers to problem-writing prompts (those ending in this cue).
NEW_PROBLEM_CUE = "New problem:"
INTERPOLATIONS_KEY = "__interpolations__"
#: Key of the scripts file holding the answer to every prompt that no script matches.
ANY_KEY = "__any__"


def next_piece(scripts: dict[str, Any], prompt: str, stops: list[str], seed: int = 0) -> tuple[str, str] | None:
    """The continuation of ``prompt`` along its question's script up to the next stop marker, and the finish reason.

    A script may be a list: the request's ``seed`` picks one (sampled solutions that differ). A prompt ending in
    ``New problem:`` is answered from the ``__interpolations__`` list of ``[needle, new problem]`` pairs: the first
    pair whose needle occurs in the prompt.
    """
    if prompt.rstrip().endswith(NEW_PROBLEM_CUE) and INTERPOLATIONS_KEY in scripts:
        for needle, new_problem in scripts[INTERPOLATIONS_KEY]:
            if needle in prompt:
                return " " + new_problem, "length"
        return None
    questions = USER_TEXT.findall(prompt)  # the last one: few-shot examples may come first
    if "<|assistant|>" not in prompt or not questions or questions[-1] not in scripts:
        return None
    script = scripts[questions[-1]]
    if isinstance(script, list):
        script = script[seed % len(script)]
    written = EXECUTION_BLOCK.sub("", prompt.rsplit("<|assistant|>", 1)[1])
    if not script.startswith(written):
        return None
    rest = script[len(written) :]
    ends = [rest.find(stop) + len(stop) for stop in stops if stop in rest]
    if not ends:
        return rest, "length"
    return rest[: min(ends)], "stop_sequence"


def next_fenced_piece(scripts: dict[str, Any], prompt: str, stops: list[str], marker: str) -> tuple[str, str] | None:
    """The continuation of a fenced-Markdown prompt along its script, and the finish reason (``eos_token`` at the
    script's end)."""
    found = [(prompt.rfind(question), question) for question in scripts if question in prompt]
    if not found or marker not in prompt:
        return None
    script = scripts[max(found)[1]]
    written = INTERPRETER_OUTPUT.sub("", prompt.rsplit(marker, 1)[1])
    if not script.startswith(written):
        return None
    rest = script[len(written) :]
    ends = [rest.find(stop) + len(stop) for stop in stops if stop in rest]
    if not ends:
        return rest, "eos_token"
    return rest[: min(ends)], "stop_sequence"


def build_app(
    scripts: dict[str, Any], log_path: Path, strip_stops: bool, delay_s: float, fences: str | None = None
) -> web.Application:
    in_flight = 0

    async def answer(prompt: str, parameters: dict[str, object]) -> tuple[str, str, str] | None:
        """The scripted continuation, its finish reason and the stop it ended on ('' for none); None off-script."""
        nonlocal in_flight
        in_flight += 1
        with log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps({"prompt": prompt, "parameters": parameters, "in_flight": in_flight}) + "\n")
        try:
            await asyncio.sleep(delay_s)  # a model takes time: lets concurrent requests overlap
        finally:
            in_flight -= 1
        if fences is not None:
            piece = next_fenced_piece(scripts, prompt, list(parameters.get("stop") or []), fences)  # type: ignore[call-overload]
            if piece is None:
                return None
            text, reason = piece
            return text, reason, text[-len("```output") :] if reason == "stop_sequence" else ""
        stops = list(parameters.get("stop") or STOPS)  # type: ignore[call-overload]
        piece = next_piece(scripts, prompt, stops, int(parameters.get("seed") or 0))  # type: ignore[call-overload]
        if piece is None and ANY_KEY in scripts:
            piece = scripts[ANY_KEY], "length"
        if piece is None:
            return None
        text, reason = piece
        matched = next((stop for stop in stops if reason == "stop_sequence" and text.endswith(stop)), "")
        return text, reason, matched

    def off_script() -> web.Response:
        return web.json_response({"error": "prompt strays from the script", "error_type": "validation"}, status=422)

    async def generate(request: web.Request) -> web.Response:
        body = await request.json()
        result = await answer(body["inputs"], body.get("parameters", {}))
        if result is None:
            return off_script()
        text, reason, matched = result
        if strip_stops and matched:  # what OpenAI-compatible servers return
            text = text[: -len(matched)]
        details = {"finish_reason": reason, "generated_tokens": max(1, len(text) // 4), "seed": None,
                   "prefill": [], "tokens": []}  # fmt: skip
        return web.json_response([{"generated_text": text, "details": details}])

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        parameters = {key: value for key, value in body.items() if key != "prompt"}
        result = await answer(body["prompt"], parameters)
        if result is None:
            return off_script()
        text, reason, matched = result
        text = text[: len(text) - len(matched)]
        choice = {"index": 0, "text": text, "finish_reason": "stop" if matched or reason == "eos_token" else "length"}
        usage = {"prompt_tokens": len(body["prompt"]) // 4, "completion_tokens": max(1, len(text) // 4)}
        return web.json_response({"object": "text_completion", "choices": [choice], "usage": usage})

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        question = [m["content"] for m in body["messages"] if m.get("role") == "user"][-1]
        parameters = {key: value for key, value in body.items() if key != "messages"}
        result = await answer(f"<|user|><|text|>{question}<|endofblock|><|assistant|>", parameters)
        if result is None:
            return off_script()
        text, _, matched = result
        text = text[: len(text) - len(matched)]
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop" if matched else "length"}
        usage = {"prompt_tokens": len(question) // 4, "completion_tokens": max(1, len(text) // 4), "total_tokens": 0}
        return web.json_response({"id": "scripted", "object": "chat.completion", "created": 0, "model": "scripted",
                                  "choices": [choice], "usage": usage})  # fmt: skip

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/", generate)
    app.router.add_post("/generate", generate)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@dataclass
class ScriptedServer:
    """A running scripted server: its URL and the log of every prompt it received."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def launch(scripts: dict[str, Any], folder: Path, *flags: str) -> ScriptedServer:
    """Start this file as a server process on 127.0.0.1 with ``scripts``; returns once it listens."""
    scripts_path = folder / "scripts.json"
    scripts_path.write_text(json.dumps(scripts), encoding="utf-8")
    port_file, log = folder / "port.txt", folder / "requests.jsonl"
    log.touch()
    command = [
        sys.executable,
        __file__,
        "--scripts",
        str(scripts_path),
        "--port-file",
        str(port_file),
        "--log",
        str(log),
    ]
    process = subprocess.Popen([*command, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"scripted server did not start: {error}")
        time.sleep(0.05)
    return ScriptedServer(process, f"http://127.0.0.1:{port_file.read_text()}", log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--strip-stops", action="store_true", help="leave the matched stop marker out of the text")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each request takes")
    parser.add_argument(
        "--fences", default=None, help="fenced-Markdown scripts; the chat template's generation prompt"
    )
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections made before the app starts wait in the backlog
    scripts = json.loads(args.scripts.read_text(encoding="utf-8"))
    app = build_app(scripts, args.log, args.strip_stops, args.delay, args.fences)

    async def announce_port(_: web.Application) -> None:
        args.port_file.write_text(str(sock.getsockname()[1]), encoding="utf-8")

    app.on_startup.append(announce_port)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
