"""MathCodeInstruct-style LCE training data: teacher solutions, problem interpolation and self-distillation.

Following MathCoder (arXiv 2310.03731, Sec. 2): a teacher model solves seed problems that have gold answers (GSM8K,
MATH train) in the LCE format, with every code block really executed, and a solution is kept only when its final
answer matches the gold one; the teacher then writes new problems whose difficulty lies between an easier and a
harder seed problem (problem interpolation); an LCE model solves each new problem several times with sampling and a
solution is kept only when all the samples reach the same answer (self-distillation). The solving loop and the
grader are the evaluation's own (:mod:`evaluation.lce.engine`, :mod:`evaluation.grading`): data is made by the same
code that later measures the model. ``mathcode-pile instruct --config recipes/mathcode_instruct/demo.yaml``.
"""
