"""Evaluation: the project's answer grader, the MathCoder2 lm-eval suite and its results tables.

``evaluation.grading`` is the one grader every evaluation imports; ``evaluation/tasks`` holds the lm-eval task
YAMLs (``--include_path evaluation/tasks``); ``evaluation.run_eval`` drives a whole suite run.
"""
