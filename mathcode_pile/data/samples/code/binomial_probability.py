"""Exact binomial probabilities with fractions: P(X = k) for n fair coin flips."""

from fractions import Fraction
from math import comb


def binomial_pmf(n, k, p=Fraction(1, 2)):
    return comb(n, k) * p**k * (1 - p) ** (n - k)


if __name__ == "__main__":
    for k in range(5):
        print(k, binomial_pmf(4, k))
    print("P(at least 3 heads in 4 flips) =", binomial_pmf(4, 3) + binomial_pmf(4, 4))
