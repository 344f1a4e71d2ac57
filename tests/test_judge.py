"""The judging process: answers come back from a child process, a call past its deadline kills the child and the
next call gets a fresh one, a dead child is replaced, any thread may call, and a forked process uses its own."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from evaluation.grading import grade, judge_answers_match, judge_grade
from evaluation.judge import JudgeError, idle_judge_pids, run_judged


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_judged_call_returns_what_the_function_computes_in_the_child() -> None:
    assert run_judged(judge_answers_match, "x^2+2x+1", "(x+1)^2", 1e-5, 0.0, timeout_s=60) == [True, "math_verify"]
    assert idle_judge_pids(), "the child is kept for the next call"
    assert all(pid != os.getpid() for pid in idle_judge_pids())


def test_only_functions_marked_judged_can_be_called() -> None:
    with pytest.raises(ValueError, match="not marked @judged"):
        run_judged(os.getpid, timeout_s=5)


def test_a_call_past_its_deadline_kills_the_child_and_the_next_call_starts_a_fresh_one() -> None:
    run_judged(judge_answers_match, "1", "1", 1e-5, 0.0, timeout_s=60)  # a warm child
    before = set(idle_judge_pids())
    # parsing and comparing two expressions with sympy takes far longer than a microsecond
    with pytest.raises(JudgeError, match="timed out"):
        run_judged(judge_grade, "x^2+2x+1", "(x+1)^2", "math", 1e-5, 0.0, timeout_s=1e-6)
    killed = before - set(idle_judge_pids())
    assert len(killed) == 1 and all(_gone(pid) for pid in killed)
    assert run_judged(judge_grade, "x^2+2x+1", "(x+1)^2", "math", 1e-5, 0.0, timeout_s=60) == [
        "x^2+2x+1",
        True,
        "math_verify",
    ]
    assert not killed & set(idle_judge_pids())


def test_a_child_that_died_is_replaced() -> None:
    run_judged(judge_answers_match, "1", "1", 1e-5, 0.0, timeout_s=60)
    for pid in idle_judge_pids():
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not all(_gone(pid) or _zombie(pid) for pid in idle_judge_pids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert grade("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}").correct


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_threads_grade_at_once_each_with_its_own_child() -> None:
    results: dict[int, bool] = {}

    def work(index: int) -> None:
        results[index] = grade(f"x^2+{index}x", f"x(x+{index})", "math").correct

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {0: True, 1: True, 2: True, 3: True}
    assert len(idle_judge_pids()) >= 1


def _grade_in_fork(queue: multiprocessing.Queue) -> None:
    queue.put((os.getpid(), grade("x^2+2x+1", "(x+1)^2", "math").correct, idle_judge_pids()))


def test_a_forked_process_starts_its_own_judge_and_leaves_the_parents_alone() -> None:
    grade("x^2+2x+1", "(x+1)^2", "math")
    parents = set(idle_judge_pids())
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_grade_in_fork, args=(queue,))
    child.start()
    child_pid, correct, child_judges = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0 and correct
    assert child_judges and not set(child_judges) & parents
    assert set(idle_judge_pids()) == parents and not any(_gone(pid) for pid in parents)
    assert child_pid != os.getpid()
