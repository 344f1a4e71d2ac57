"""The LCE block format: serialization, strict parsing, chat and tool-integrated Markdown conversions, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from mathcode_pile.lce.format import (
    LCE_SPECIAL_TOKENS,
    Block,
    LCEFormatError,
    Message,
    blocks_from_tir,
    blocks_to_tir,
    build_conversation,
    from_chat_messages,
    from_tir_messages,
    parse_conversation,
    render_prompt,
    serialize_conversation,
    to_chat_messages,
    to_tir_messages,
)

SOLUTION = (
    Block("text", "Let x be the starting amount; solve the equation with code."),
    Block(
        "code", "from sympy import symbols, Eq, solve\nx = symbols('x')\nprint(solve(Eq(x - (x/2 + 50), 120), x)[0])"
    ),
    Block("execution", "340"),
    Block("text", "Thus they started with $340$, so the answer is \\boxed{340}."),
)


def conversation() -> list[Message]:
    return build_conversation("How much money did they start with?", solution=SOLUTION)


def test_serialized_layout_matches_mathcoder() -> None:
    text = serialize_conversation(conversation())
    assert text.startswith(
        "<|system|><|text|><|endofblock|><|endofmessage|>"
        "<|user|><|text|>How much money did they start with?<|endofblock|><|endofmessage|><|assistant|><|text|>Let x"
    )
    assert "<|endofblock|><|execution|>340<|endofblock|><|text|>Thus" in text
    assert text.endswith("\\boxed{340}.<|endofblock|><|endofmessage|>")


def test_round_trip_keeps_whitespace_and_empty_blocks() -> None:
    messages = [
        *build_conversation("  a question\nwith lines \n", system="Solve it."),
        Message("assistant", (Block("code", "\nx = 1\n\nprint(x)\n"), Block("execution", ""), Block("text", " 1 "))),
        Message("user", (Block("text", "and again?"),)),
        Message("assistant", (Block("text", "Yes."),)),
    ]
    assert parse_conversation(serialize_conversation(messages)) == messages


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("<|user|><|text|>hi<|endofblock|>", "not closed by <|endofmessage|>"),
        ("<|user|><|text|>hi<|endofmessage|>", "not closed by <|endofblock|>"),
        ("stray<|user|><|text|>hi<|endofblock|><|endofmessage|>", "expected a role marker"),
        ("<|user|>hi<|endofmessage|>", "expected a block marker"),
        ("<|user|><|code|>x<|endofblock|><|endofmessage|>", "may only hold text blocks"),
        ("<|assistant|><|text|>a<|text|>b<|endofblock|><|endofmessage|>", "not closed by <|endofblock|>"),
    ],
)
def test_parse_rejects_malformed_text(text: str, complaint: str) -> None:
    with pytest.raises(LCEFormatError, match=complaint.replace("|", r"\|")):
        parse_conversation(text)


def test_serialize_refuses_content_holding_a_marker() -> None:
    messages = build_conversation("what is <|code|> for?")
    with pytest.raises(LCEFormatError, match=r"contains the marker <\|code\|>"):
        serialize_conversation(messages)


def test_render_prompt_ends_with_assistant_role() -> None:
    prompt = render_prompt(build_conversation("2+2?"))
    assert prompt.endswith("<|endofmessage|><|assistant|>")
    with pytest.raises(LCEFormatError):
        render_prompt(conversation())


def test_chat_messages_round_trip_with_typed_parts() -> None:
    chat = to_chat_messages(conversation())
    assert chat[2]["content"][1] == {"type": "code", "content": SOLUTION[1].content}
    assert from_chat_messages(chat) == conversation()


def test_chat_messages_accept_strings_and_name_the_bad_message() -> None:
    chat = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<|code|>print(1)<|endofblock|><|execution|>1<|endofblock|>"},
    ]
    messages = from_chat_messages(chat)
    assert messages[1].blocks == (Block("code", "print(1)"), Block("execution", "1"))
    with pytest.raises(LCEFormatError, match=r"message 1 \(assistant\): content part 0 has type 'image'"):
        from_chat_messages([chat[0], {"role": "assistant", "content": [{"type": "image", "content": ""}]}])
    with pytest.raises(LCEFormatError, match="message 0: role 'tool'"):
        from_chat_messages([{"role": "tool", "content": "x"}])


TIR_ANSWER = (
    "To find the sum we add the numbers.\n\n"
    "```python\na = 2\nb = 3\nprint(a + b)\n```\n```output\n5\n```\n\n"
    "The sum is $\\boxed{5}$."
)


def test_tir_markdown_to_blocks_and_back() -> None:
    blocks = blocks_from_tir(TIR_ANSWER)
    assert blocks == (
        Block("text", "To find the sum we add the numbers."),
        Block("code", "a = 2\nb = 3\nprint(a + b)"),
        Block("execution", "5"),
        Block("text", "The sum is $\\boxed{5}$."),
    )
    assert blocks_to_tir(blocks) == TIR_ANSWER
    assert blocks_from_tir(blocks_to_tir(SOLUTION)) == SOLUTION


def test_tir_messages_convert_both_ways() -> None:
    chat = [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": TIR_ANSWER}]
    messages = from_tir_messages(chat)
    assert [m.role for m in messages] == ["system", "user", "assistant"]
    assert messages[2].blocks[2] == Block("execution", "5")
    assert to_tir_messages(messages) == chat


def test_tir_output_without_code_is_an_error() -> None:
    with pytest.raises(LCEFormatError, match="does not follow a ```python fence"):
        blocks_from_tir("Text.\n```output\n5\n```")


def test_tokens_are_atomic_kept_by_decoding_and_rows_start_at_the_mean(tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathcode_pile.lce.tokens import add_lce_tokens, prepare_lce_model_and_tokenizer, stop_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    original = len(tokenizer)
    old_mean = model.get_input_embeddings().weight[:original].mean(dim=0).detach().clone()

    ids = prepare_lce_model_and_tokenizer(model, tokenizer)

    assert ids == list(range(original, original + len(LCE_SPECIAL_TOKENS)))
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == len(tokenizer) == original + len(LCE_SPECIAL_TOKENS)
    for token_id in ids:
        assert torch.allclose(weight[token_id], old_mean, atol=1e-6)
    assert not torch.allclose(weight[0], old_mean)
    text = serialize_conversation(conversation())
    encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert sum(token_id in ids for token_id in encoded) == text.count("<|")
    assert tokenizer.decode(encoded, skip_special_tokens=True) == text
    assert add_lce_tokens(tokenizer) == ids  # idempotent: nothing added twice
    assert set(stop_token_ids(tokenizer)[:2]) == {ids[-2], ids[-1]}


def test_chat_template_renders_the_training_and_prompt_layout(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from mathcode_pile.lce.tokens import LCE_CHAT_TEMPLATE, add_lce_tokens

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    add_lce_tokens(tokenizer)
    tokenizer.chat_template = LCE_CHAT_TEMPLATE
    chat = to_chat_messages(conversation())
    assert tokenizer.apply_chat_template(chat, tokenize=False) == serialize_conversation(conversation())
    question = [{"role": "user", "content": "2+2?"}]
    rendered = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    assert rendered == render_prompt(build_conversation("2+2?"))


def test_shipped_demo_set_is_what_the_sandbox_prints() -> None:
    """The bundled LCE demo rows regenerate identically: every execution block is the real output of its code."""
    import json

    from mathcode_pile.lce.demo_data import DEMO_FILE, generate_examples
    from mathcode_pile.lce.execution import SandboxSessions

    shipped = [json.loads(line) for line in DEMO_FILE.read_text(encoding="utf-8").splitlines()]
    assert len(shipped) == 200
    with SandboxSessions(workers=1) as sessions:
        regenerated = generate_examples(12, seed=0, session_factory=sessions)
    assert regenerated == shipped[:12]
    rectangle = from_chat_messages(shipped[1]["messages"])[2].blocks
    assert [b.kind for b in rectangle] == ["text", "code", "execution", "text", "code", "execution", "text"]
