"""Solve a quadratic equation symbolically and check the roots."""

import sympy as sp

x = sp.symbols("x")
equation = sp.Eq(x**2 - 5 * x + 6, 0)
roots = sp.solve(equation, x)
print("roots:", roots)
assert all(sp.simplify(equation.lhs.subs(x, r)) == 0 for r in roots)
print("sum of roots:", sum(roots), "product of roots:", sp.prod(roots))
