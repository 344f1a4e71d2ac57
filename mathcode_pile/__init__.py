"""MathCode-Pile: a math pretraining corpus builder that pairs reasoning steps with executed, verified Python."""

__version__ = "0.1.0"
