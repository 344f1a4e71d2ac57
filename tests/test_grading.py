"""The project grader: extraction rules, comparison rules, the reference grader's known failure modes, the edge cases
of ordered and unordered answers, rounded golds, units and number formats, gold checks on the real benchmark
solutions, grading in threads, row grading and the ``mathcode-eval grade`` command."""

from __future__ import annotations

import ast
import json
import random
import threading
from pathlib import Path

import pytest

from evaluation import grading
from evaluation.answer_forms import answer_readings, clean_answer, number_readings, parse_number, split_answer_list
from evaluation.answers import find_last_boxed
from evaluation.benchmarks import read_jsonl
from evaluation.cli import main as eval_cli
from evaluation.grading import GradeResult, GradingInputError, extract_answer, grade, grade_rows, summarize_grades
from mathcode_pile.paths import benchmark_file

# ------------------------------------------------------------------------------------------------ extraction


@pytest.mark.parametrize(
    ("text", "dataset", "expected"),
    [
        ("so $x = \\boxed{\\frac{1}{2}}$.", None, "\\frac{1}{2}"),
        ("first \\boxed{3} then \\boxed{\\left(1, \\sqrt{2}\\right)}", None, "\\left(1, \\sqrt{2}\\right)"),
        ("Final Answer: The final answer is $[2,5)$. I hope it is correct.", "math", "[2,5)"),
        ("She pays 3 * 4 = 12 dollars. The answer is 12.", "gsm8k", "12"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "gsm8k", "72"),
        ("He made 9 * 2 = $<<9*2=18>>18 every day at the market.", "gsm8k", "18"),
        ("There are 9 + 6 = <<9+6=15>>15 liters of water out of the 24 liters.", "gsm8k", "15"),
        ("Y = 12 cm\nThe red rope was 20 cm long.", "gsm8k", "20"),
        ("He paid $400 000 - $282 000 = $118 000.", "gsm8k", "118000"),
        ("The answer is (C).", "sat_math", "C"),
        ("I am sure the correct option is D because 4 > 3.", "sat_math", "D"),
        ("(b)", "mmlu_math", "B"),
        ("Final Answer: The diameter of the image is $\\frac{1}{2}$ cm.", "ocw", "\\frac{1}{2}"),
        ("So the answer is $\\$5$ per day.", None, "\\$5"),
        ("The final answer is 5.\n\nQuestion: what is 7?", None, "5"),
        ("-2, 3, 5", None, "-2, 3, 5"),
        ("", None, None),
        ("   ", "gsm8k", None),
        ("No idea how to solve this one, sorry about that, it is really too hard for me today.", None, None),
    ],
)
def test_extract_answer(text: str, dataset: str | None, expected: str | None) -> None:
    assert extract_answer(text, dataset) == expected


def test_find_last_boxed_handles_nesting_and_refuses_unbalanced_boxes() -> None:
    assert find_last_boxed("\\boxed{\\frac{a}{b^{2}}}") == "\\frac{a}{b^{2}}"
    assert find_last_boxed("\\boxed 5$") == "5"
    assert find_last_boxed("\\boxed{\\frac{1}{2}") is None
    assert find_last_boxed("no box here") is None


def test_clean_answer_and_number_parsing() -> None:
    assert clean_answer("\\$1,000.00") == "1000.00"
    assert clean_answer("\\dfrac{3}{4}") == "\\frac{3}{4}"
    assert answer_readings("x = \\dfrac{3}{4}") == ["x = \\dfrac{3}{4}", "\\dfrac{3}{4}"]
    assert answer_readings("z = 3+3 = 2") == ["z = 3+3 = 2", "2"]  # a chain of equalities reads as its last part
    assert answer_readings("|AB|=1")[-1] == "1" and answer_readings("f(x)=1")[-1] == "1"
    assert answer_readings("2x+4y-3=0") == ["2x+4y-3=0"]  # an equation, not a label
    assert clean_answer("x \\geq 5") == clean_answer("x >= 5") and clean_answer("x \\neq 3") == clean_answer("x != 3")
    assert clean_answer("16,\\!386.20") == "16386.20" and clean_answer("32, 349") == "32,349"
    assert clean_answer("90^\\circ") == "90"
    assert clean_answer("45 \\text{ units}^2") == "45"
    assert clean_answer("-2 3 5") == "-2 3 5"  # digits stay apart: never -235
    assert parse_number("4.5e33") == pytest.approx(4.5e33)
    assert parse_number("4.5\\times10^{33}") == pytest.approx(4.5e33)
    assert parse_number("-1./3") == pytest.approx(-1 / 3)
    assert parse_number("\\frac{3}{4}") == pytest.approx(0.75)
    assert parse_number("10^{-3}") == pytest.approx(1e-3)
    assert parse_number("x+1") is None
    assert parse_number("10^{99999}") is None
    assert split_answer_list("1,000") is None or clean_answer("1,000") == "1000"
    pair = split_answer_list("(1,2)")
    assert pair is not None and pair.ordered and pair.items == ("1", "2")
    assert split_answer_list("[2,5)") is None
    assert number_readings("1 000") == [1000.0] and number_readings("1000,99") == [1000.99]
    assert number_readings("1,22") == [1.22] and number_readings("0,111") == [0.111]
    assert number_readings(clean_answer("1,000")) == [1000.0] and number_readings("-2 3 5") == []


# ------------------------------------------------------------------------------------------------ comparison


@pytest.mark.parametrize(
    ("prediction", "gold", "dataset", "reason"),
    [
        ("1,000", "1000", None, "exact"),
        ("1000", "1,000", "gsm8k", "exact"),
        ("-2, 3, 5", "-2 3 5", None, "list"),
        ("5, -2, 3", "-2, 3, 5", None, "list"),
        ("\\left(\\frac34, 5\\right)", "(\\frac{3}{4},5)", None, "exact"),
        ("(0.75, 5)", "\\left(\\frac{3}{4},5\\right)", None, "list"),
        ("0.5", "\\frac12", None, "numeric"),
        ("4.5\\times 10^{33}", "4.5e33", "ocw", "numeric"),
        ("The answer is $18 dollars.", "18", None, "exact"),
        ("\\$5.00", "5", None, "numeric"),
        ("50\\%", "50", None, "exact"),
        ("x^2+2x+1", "(x+1)^2", "math", "math_verify"),
        ("\\{1, 2\\}", "2, 1", None, "list"),
        ("\\{1, \\sqrt{2}\\}", "\\sqrt2, 1", None, "list"),
        ("(b)", "B", None, "choice"),
        ("The answer is (c).", "C", "sat_math", "choice"),
        ("C", "\\text{(C)}", "math", "choice"),
    ],
)
def test_equivalent_answers_are_correct(prediction: str, gold: str, dataset: str | None, reason: str) -> None:
    result = grade(prediction, gold, dataset)
    assert result.correct, result
    assert result.reason == reason


@pytest.mark.parametrize(
    ("prediction", "gold", "dataset"),
    [
        ("30.003", "30", None),  # 1e-4 relative error is wrong at the default tolerance
        ("30", "30.003", "ocw"),
        ("-2, 3, 5", "-235", None),  # commas are not thousands separators here
        ("-235", "-2, 3, 5", None),
        ("2,5", "25", None),
        ("(1, 2)", "(2, 1)", None),  # tuples are ordered
        ("-2 3 5", "5, -2, 3", None),  # a sequence is ordered
        ("4.49e33", "4.5e33", "ocw"),
        ("x^2+1", "(x+1)^2", "math"),
        ("The answer is (B).", "C", "sat_math"),
        ("3.89e-10", "1e-10", "ocw"),  # no absolute slack that would swallow tiny answers
    ],
)
def test_different_answers_are_wrong(prediction: str, gold: str, dataset: str | None) -> None:
    assert not grade(prediction, gold, dataset).correct


@pytest.mark.parametrize("gold", ["5", "C", "x+1", "\\frac{1}{2}", "(1,2)", "[2,5)", "12 dollars", "A", "D"])
def test_a_choice_letter_does_not_match_everything(gold: str) -> None:
    """The reference grader matched ``(b)`` by substring; here it names option B and nothing else."""
    assert not grade("(b)", gold).correct
    assert not grade("The answer is (b).", gold).correct


def test_tolerances_are_parameters() -> None:
    assert grade("30.003", "30", rel_tol=1e-3) == GradeResult("30.003", True, "numeric")
    assert not grade("1e-13", "0").correct
    assert grade("1e-13", "0", abs_tol=1e-12).correct
    with pytest.raises(ValueError, match="rel_tol"):
        grade("1", "1", rel_tol=-1.0)
    with pytest.raises(ValueError, match="abs_tol"):
        grade("1", "1", abs_tol=float("nan"))


@pytest.mark.parametrize(
    ("prediction", "gold", "correct"),
    [
        # ordered: sequences, tuples and distinct labels keep their order
        ("12 3 0", "12,0,3", False),
        ("12 0 3", "12,0,3", True),
        ("(3, 2)", "x=2, y=3", False),
        ("(2, 3)", "x=2, y=3", True),
        ("y=3, x=2", "x=2, y=3", True),  # both name their values: compared label by label
        ("4, 5", "AB=4,CD=5", True),
        ("5, 4", "AB=4,CD=5", False),
        # unordered: all the solutions, however they are listed
        ("3, -2", "-2, 3", True),
        ("\\{3, -2\\}", "-2, 3", True),
        ("x = 3 \\text{ or } x = -2", "-2, 3", True),
        ("(7,2),(5,2)", "p=5,q=2;p=7,q=2", True),
        ("(2,5),(2,7)", "p=5,q=2;p=7,q=2", False),
        ("$\\boxed{(1, 2)}, \\boxed{(2, 1)}$", "(2,1),(1,2)", True),
        ("\\boxed{2}, \\boxed{3}", "3, 2", True),
        ("\\boxed{2}, \\boxed{3}", "3", False),
        ("(1, 3)", "\\{1, 3\\}", False),  # a point is not a set
    ],
)
def test_ordered_and_unordered_answers(prediction: str, gold: str, correct: bool) -> None:
    assert grade(prediction, gold, "math").correct is correct


@pytest.mark.parametrize(
    ("prediction", "gold", "dataset", "correct", "reason"),
    [
        # a gold written as a rounded decimal: an exact or longer prediction that rounds to it is right
        ("\\frac{2}{3}", "0.6667", "math", True, "rounded"),
        ("7.03125", "7.03", "ocw", True, "rounded"),
        ("7.04", "7.03", "ocw", False, "numeric_mismatch"),
        ("0.67", "0.6667", None, False, "numeric_mismatch"),  # less precise than the gold
        ("0.6667", "\\frac{2}{3}", "math", False, "numeric_mismatch"),  # an exact gold wants the exact value
        ("\\frac{\\sqrt{2}}{2}", "0.71", "math", True, "math_verify"),
        # units in braces or after the number, percent words
        ("448{ml}", "448", None, True, "exact"),
        ("448 ml", "448", None, True, "exact"),
        ("The distance is $\\boxed{125\\textnormal{ miles}}.$", "$125$ miles", None, True, "exact"),
        ("28 percent", "28\\%", None, True, "exact"),
        # number formats
        ("1 000", "1000", None, True, "numeric"),
        ("1,22", "1.22", None, True, "numeric"),
        ("1000,99", "1000.99", None, True, "numeric"),
        ("$\\boxed{32, 349}$", "32349", None, False, "list_mismatch"),
        ("2,5", "25", None, False, "numeric_mismatch"),
    ],
)
def test_rounded_golds_units_and_number_formats(
    prediction: str, gold: str, dataset: str | None, correct: bool, reason: str
) -> None:
    assert grade(prediction, gold, dataset) == GradeResult(grade(prediction, gold, dataset).extracted, correct, reason)


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("Final Answer: The volume is 120.", "120"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("Answer $ 9 $", "9"),
        ("Answer \\( 9 \\)", "9"),
        ("Answer \\[ (9+1) \\]", "10"),
        ("The answer is 9. I hope it is correct.<|im_end|>\n<|im_start|>user\nAnd 3+4? The answer is 7.", "9"),
        ("Therefore $x \\geq 5$ is the solution.", "x >= 5"),
        ("We find that $x \\lt 3$.", "x < 3"),
        ("The solution is $x != 5$", "x \\neq 5"),
        ("$-2 \\le x \\le 7$", "x \\in [-2,7]"),
        ("$-34x-45y+20z-100=0$", "34x+45y-20z+100=0"),
        ("$y=-\\frac{1}{2}x+\\frac{3}{4}$", "2x+4y-3=0"),
        ("Here: $ \\begin{pmatrix}0 & 0 \\\\ 0 & 0\\end{pmatrix} $", "\\begin{bmatrix}0 & 0 \\\\ 0 & 0\\end{bmatrix}"),
        (
            "Special: $ \\left[\\begin{array}{cc}1 & 2 \\\\ 3 & 4\\end{array}\\right] $",
            "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
        ),
        (
            "The sum is $\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}"
            " + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}$",
            "\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}",
        ),
        ("$|AB| = 1$", "1"),
        ("1", "|AB|=1"),
        ("$21,16,11$", "$21,16$ or $11$"),
    ],
)
def test_answers_math_verify_finds_are_found_here_too(prediction: str, gold: str) -> None:
    """The classes of the issue that the previous grader missed and math-verify gets right."""
    result = grade(prediction, gold, "math")
    assert result.correct, result


@pytest.mark.parametrize(
    "prediction",
    [
        "\\binom{10^7}{5 \\cdot 10^6}",
        "10^{10^{10}}",
        "9999999!",
        "(10^{7})!",
        "2^{2^{2^{2^{2}}}}",
        "factorial(5000)",
        "binomial(10**7, 5*10**6)",
        "9" * 5000,
        "x" * 300_000,
        "\\frac{" * 3000,
    ],
)
def test_hostile_predictions_are_graded_not_raised_or_hung(prediction: str) -> None:
    """Texts that would make sympy compute for minutes, or overflow Python's integer printing, are refused by the
    pre-parse bounds (or killed in the judging process): a verdict comes back, never an exception."""
    for gold in ("252", "\\binom{10}{5}"):
        result = grade(prediction, gold, "math")
        assert not result.correct
        assert result.reason.split(":")[0] in {"mismatch", "numeric_mismatch", "grade_error", "no_answer"}
    assert grade("The answer is $\\binom{10^7}{5 \\cdot 10^6}$.", "\\binom{10}{5}").reason.startswith(
        "grade_error: binomial"
    )


def test_gold_may_be_a_number_or_a_solution_and_missing_predictions_are_no_answer() -> None:
    assert grade("The answer is 18.", 18).correct
    assert grade("18", "Janet sells 9 eggs.\n#### 18").correct
    assert grade("\\frac{36}{11}", "so $p + q = \\boxed{\\frac{36}{11}}$.").correct
    assert grade(None, "5") == GradeResult(None, False, "no_answer")
    with pytest.raises(ValueError, match="empty"):
        grade("5", "  ")
    with pytest.raises(ValueError, match="not an option letter"):
        grade("B", "42", dataset="sat_math")


def test_grading_works_in_threads_and_the_grader_never_evaluates_code() -> None:
    """math-verify runs in a judging process's main thread, so any thread may grade, symbolic answers included."""
    results: list[GradeResult] = []
    threads = [threading.Thread(target=lambda: results.append(grade("x^2+2x+1", "(x+1)^2", "math"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [GradeResult("x^2+2x+1", True, "math_verify")] * 3
    for module in ("grading.py", "answers.py", "answer_forms.py", "judge.py", "text_bounds.py"):
        tree = ast.parse((Path(grading.__file__).parent / module).read_text(encoding="utf-8"))
        called = {
            node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not called & {"eval", "exec", "compile"}, module


# --------------------------------------------------------------------------------- gold checks on real data

GOLD_CHECKS = [
    ("gsm8k", "gsm8k_test", "cot"),
    ("math", "math_test", "solution"),
    ("ocw", "ocw_courses_test", "solution"),
]


@pytest.mark.parametrize(("dataset", "file_name", "solution_field"), GOLD_CHECKS)
def test_reference_solutions_grade_correct(
    benchmarks_dir: Path, dataset: str, file_name: str, solution_field: str
) -> None:
    """Every benchmark's own reference solution, through extraction and grading, scores at least 99%."""
    rows = read_jsonl(benchmark_file(benchmarks_dir, file_name))
    correct = sum(grade(row[solution_field], row["answer"], dataset).correct for row in rows)
    assert correct / len(rows) >= 0.99, f"{dataset}: {correct}/{len(rows)}"


@pytest.mark.parametrize(("dataset", "file_name", "solution_field"), GOLD_CHECKS)
def test_shuffled_gold_answers_score_near_chance(
    benchmarks_dir: Path, dataset: str, file_name: str, solution_field: str
) -> None:
    """The same solutions against another problem's answer: only coincidental repeats may count."""
    # symbolic mismatches cost math-verify ~50 ms each
    rows = read_jsonl(benchmark_file(benchmarks_dir, file_name))[:150]
    golds = [row["answer"] for row in rows]
    random.Random(0).shuffle(golds)
    correct = sum(grade(row[solution_field], gold, dataset).correct for row, gold in zip(rows, golds, strict=True))
    assert correct / len(rows) <= 0.05, f"{dataset}: {correct}/{len(rows)}"


# ---------------------------------------------------------------------------------------------- grade_rows


def test_grade_rows_adds_verdicts_and_names_bad_rows() -> None:
    rows = [
        {"prediction": "The answer is 1,000.", "answer": "1000", "id": 1},
        {"prediction": "(b)", "answer": "B", "dataset": "sat_math"},
        {"prediction": None, "answer": "4"},
    ]
    graded = grade_rows(rows, dataset="gsm8k")
    assert [row["correct"] for row in graded] == [True, True, False]
    assert graded[0]["extracted"] == "1,000" and graded[0]["id"] == 1
    assert graded[2]["grade_reason"] == "no_answer"
    summary = summarize_grades(graded)
    assert summary["rows"] == 3 and summary["correct"] == 2
    assert summary["per_dataset"]["sat_math"]["accuracy"] == 1.0
    with pytest.raises(GradingInputError, match=r"preds.jsonl: row 1: field 'answer' is missing"):
        grade_rows([{"prediction": "1", "answer": "1"}, {"prediction": "2"}], source="preds.jsonl")
    with pytest.raises(GradingInputError, match=r"row 0: field 'prediction' is missing"):
        grade_rows([{"answer": "1"}])
    with pytest.raises(GradingInputError, match=r"row 0: field 'answer' of multiple-choice"):
        grade_rows([{"prediction": "A", "answer": "12"}], dataset="mmlu_math")


def test_grade_rows_in_parallel_matches_one_at_a_time() -> None:
    rows = [
        {"prediction": "x^2+2x+1", "answer": "(x+1)^2"},
        {"prediction": "\\frac{\\sqrt{3}}{2}", "answer": "\\frac{\\sqrt3}{2}"},
        {"prediction": "-2 3 5", "answer": "-2, 3, 5"},
        {"prediction": "30.003", "answer": "30"},
    ] * 3
    assert grade_rows(rows, num_proc=2) == grade_rows(rows)


# ----------------------------------------------------------------------------------------------------- CLI


def test_cli_grades_a_jsonl_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "predictions.jsonl"
    rows = [
        {"prediction": "The answer is 72.", "answer": "72", "dataset": "gsm8k"},
        {"prediction": "So the answer is \\boxed{\\frac{1}{2}}.", "answer": "0.5", "dataset": "math"},
        {"prediction": "(b)", "answer": "7", "dataset": "math"},
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    output = tmp_path / "out" / "graded.parquet"
    assert eval_cli(["grade", "--input", str(source), "--output", str(output)]) == 0
    import pyarrow.parquet as pq

    graded = pq.read_table(output).to_pylist()
    assert [row["correct"] for row in graded] == [True, True, False]
    assert graded[1]["extracted"] == "\\frac{1}{2}"
    printed = capsys.readouterr().out
    assert "gsm8k: 1/1 correct" in printed and "math: 1/2 correct" in printed


def test_cli_reports_bad_input_with_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "broken.jsonl"
    source.write_text('{"prediction": "1", "answer": "1"}\n{"answer": "2"}\n', encoding="utf-8")
    assert eval_cli(["grade", "--input", str(source), "--output", str(tmp_path / "x.jsonl"), "--strict"]) == 2
    error = capsys.readouterr().err
    assert "broken.jsonl:2: field 'prediction' is missing" in error
    assert not (tmp_path / "x.jsonl").exists()
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text('{"prediction": "1", "answer": "1"}\n{not json\n', encoding="utf-8")
    assert eval_cli(["grade", "--input", str(garbled), "--output", str(tmp_path / "y.jsonl")]) == 1
    assert "garbled.jsonl:2: invalid JSON" in capsys.readouterr().err
    graded = [json.loads(line) for line in (tmp_path / "y.jsonl").read_text().splitlines()]
    assert graded[0]["correct"] is True and graded[1]["error"].startswith("line 2: invalid JSON")
