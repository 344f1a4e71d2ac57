"""Fixed few-shot exemplars of the ``mathcoder2`` suite, written for this project (none is a test item).

Every benchmark gets four worked examples in the answer format its grader reads: GSM8K solutions end with
"The answer is N."; MATH, OCW and SAT solutions end with Minerva's line "Final Answer: The final answer is X. I hope it
is correct.". The problems are new (not taken from any test or train split), so they cannot leak test answers, and
their arithmetic is checked by ``tests/test_eval_tasks.py`` through the project grader.
"""

from __future__ import annotations

from typing import Any

GSM8K_EXEMPLARS: tuple[dict[str, str], ...] = (
    {
        "question": "A bakery sells muffins for $3 each. On Monday it sold 42 muffins, and on Tuesday it sold 15 more "
        "muffins than on Monday. How much money did the bakery make from muffins over the two days?",
        "solution": "On Tuesday the bakery sold 42 + 15 = 57 muffins. Over the two days it sold 42 + 57 = 99 muffins. "
        "At $3 each that is 99 * 3 = $297.",
        "answer": "297",
    },
    {
        "question": "Lena reads 12 pages of her book on every weekday and 20 pages on each day of the weekend. How "
        "many pages does she read in 3 weeks?",
        "solution": "In one week she reads 5 * 12 = 60 pages on weekdays and 2 * 20 = 40 pages at the weekend, which "
        "is 60 + 40 = 100 pages. In 3 weeks she reads 3 * 100 = 300 pages.",
        "answer": "300",
    },
    {
        "question": "A water tank holds 840 liters and is one quarter full. A pump adds 35 liters every minute. How "
        "many minutes does the pump need to fill the tank?",
        "solution": "The tank holds 840 / 4 = 210 liters now, so 840 - 210 = 630 liters are missing. At 35 liters a "
        "minute the pump needs 630 / 35 = 18 minutes.",
        "answer": "18",
    },
    {
        "question": "Omar buys 3 notebooks at $2.50 each and a backpack that costs 4 times as much as one notebook. "
        "He pays with a $50 bill. How much change does he get?",
        "solution": "The notebooks cost 3 * 2.50 = $7.50 and the backpack costs 4 * 2.50 = $10. He spends "
        "7.50 + 10 = $17.50, so his change is 50 - 17.50 = $32.50.",
        "answer": "32.50",
    },
)

MATH_EXEMPLARS: tuple[dict[str, str], ...] = (
    {
        "problem": "Find the sum of all real solutions of $x^2 - 7x + 10 = 0$.",
        "solution": "The quadratic factors as $(x-2)(x-5) = 0$, so its solutions are $x = 2$ and $x = 5$. Their sum "
        "is $2 + 5 = \\boxed{7}$.",
        "answer": "7",
    },
    {
        "problem": "What is the remainder when $2^{10}$ is divided by $7$?",
        "solution": "Since $2^3 = 8 \\equiv 1 \\pmod{7}$, we get $2^{10} = (2^3)^3 \\cdot 2 \\equiv 1^3 \\cdot 2 "
        "\\equiv 2 \\pmod{7}$. The remainder is $\\boxed{2}$.",
        "answer": "2",
    },
    {
        "problem": "Simplify $\\dfrac{x^2 - 9}{x + 3}$ for $x \\neq -3$.",
        "solution": "The numerator is a difference of squares: $x^2 - 9 = (x-3)(x+3)$. Cancelling the factor $x + 3$, "
        "which is not zero, leaves $\\boxed{x - 3}$.",
        "answer": "x - 3",
    },
    {
        "problem": "A fair six-sided die is rolled twice. What is the probability that the two rolls add up to $8$? "
        "Express your answer as a common fraction.",
        "solution": "The pairs with sum $8$ are $(2,6), (3,5), (4,4), (5,3)$ and $(6,2)$: $5$ of the $36$ equally "
        "likely outcomes. The probability is $\\boxed{\\frac{5}{36}}$.",
        "answer": "\\frac{5}{36}",
    },
)

OCW_EXEMPLARS: tuple[dict[str, str], ...] = (
    {
        "problem": "A car accelerates uniformly from rest to $30 \\mathrm{~m} / \\mathrm{s}$ in "
        "$12 \\mathrm{~s}$. How far, in meters, does it travel during this time?",
        "solution": "With uniform acceleration from rest, the distance is the average speed times the time: "
        "$d = \\frac{1}{2} \\cdot 30 \\cdot 12 = 180 \\mathrm{~m}$.",
        "answer": "180",
    },
    {
        "problem": "Find the general solution of the differential equation $\\frac{d y}{d t} = -3 y$.",
        "solution": "Separating variables gives $\\frac{d y}{y} = -3 \\, d t$, so $\\ln |y| = -3 t + c$ and "
        "$y = C e^{-3 t}$ for an arbitrary constant $C$.",
        "answer": "C e^{-3 t}",
    },
    {
        "problem": "An ideal gas at $300 \\mathrm{~K}$ and $1.0 \\times 10^{5} \\mathrm{~Pa}$ fills a volume of "
        "$0.025 \\mathrm{~m}^{3}$. How many moles of gas are there? Take $R = 8.31 \\mathrm{~J} / "
        "(\\mathrm{mol~K})$ and give your answer to two significant figures.",
        "solution": "From $P V = n R T$, $n = \\frac{P V}{R T} = \\frac{(1.0 \\times 10^{5})(0.025)}{8.31 \\times "
        "300} = \\frac{2500}{2493} \\approx 1.0$ mol.",
        "answer": "1.0",
    },
    {
        "problem": "What is the Laplace transform $F(s)$ of $f(t) = t e^{-2 t}$ for $t \\geq 0$?",
        "solution": "The transform of $t$ is $\\frac{1}{s^{2}}$, and multiplying by $e^{-2 t}$ shifts $s$ to "
        "$s + 2$, so $F(s) = \\frac{1}{(s+2)^{2}}$.",
        "answer": "\\frac{1}{(s+2)^{2}}",
    },
)

SAT_EXEMPLARS: tuple[dict[str, Any], ...] = (
    {
        "question": "If $3x + 7 = 22$, what is the value of $6x - 4$?",
        "options": ["A) 10", "B) 26", "C) 30", "D) 34"],
        "solution": "From $3x + 7 = 22$ we get $3x = 15$, so $6x = 30$ and $6x - 4 = 26$.",
        "answer": "B",
    },
    {
        "question": "A line in the $xy$-plane passes through the points $(1, 4)$ and $(3, 10)$. What is the slope of "
        "the line?",
        "options": ["A) 3", "B) 6", "C) $\\frac{1}{3}$", "D) 7"],
        "solution": "The slope is $\\frac{10 - 4}{3 - 1} = \\frac{6}{2} = 3$.",
        "answer": "A",
    },
    {
        "question": "A store discounts an $\\$80$ jacket by $25 \\%$. What is the sale price of the jacket?",
        "options": ["A) $\\$20$", "B) $\\$55$", "C) $\\$60$", "D) $\\$65$"],
        "solution": "The discount is $0.25 \\cdot 80 = 20$ dollars, so the sale price is $80 - 20 = 60$ dollars.",
        "answer": "C",
    },
    {
        "question": "Which of the following is equivalent to $(x + 2)^2 - 4$?",
        "options": ["A) $x^2$", "B) $x^2 + 4$", "C) $x^2 + 4x + 8$", "D) $x^2 + 4x$"],
        "solution": "Expanding, $(x + 2)^2 - 4 = x^2 + 4x + 4 - 4 = x^2 + 4x$.",
        "answer": "D",
    },
)


def minerva_target(solution: str, answer: str) -> str:
    """A worked solution followed by Minerva's final-answer line, the format the MATH/OCW/SAT tasks expect back."""
    return f"{solution}\nFinal Answer: The final answer is ${answer}$. I hope it is correct."


def gsm8k_target(solution: str, answer: str) -> str:
    return f"{solution} The answer is {answer}."
