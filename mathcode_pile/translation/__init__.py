"""Model translation of math text into computations with Python code (MathCoder2 §2.2)."""
