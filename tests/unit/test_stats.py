"""Exact count tails (`forewarn.stats`) against brute-force sums.

References are computed independently of the code under test: exact rational sums
with `fractions.Fraction` wherever the distribution has rational probabilities, and
for the Poisson an exact rational series times a single `math.exp(-mu)`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise

import pytest

from forewarn.stats import binomial_sf, negbin_sf, poisson_sf, score

REL = 1e-9
MUS = ("0.05", "0.3", "1", "2.5", "4", "7.5", "12")
KS = range(16)


def exact_poisson_sf(k: int, mu: str) -> float:
    """e^-mu * sum_{j>=k} mu^j / j!, the series summed exactly until its remainder is negligible."""
    if k <= 0:
        return 1.0
    m = Fraction(mu)
    term = m**k / math.factorial(k)
    total = Fraction(0)
    j = k
    # Once j + 1 > 2 mu every next term is at most half the last one, so the remainder is < term.
    while term > 0 and (j + 1 <= 2 * m or term > total * Fraction(1, 10**30)):
        total += term
        j += 1
        term = term * m / j
    return float(total) * math.exp(-float(m))


def exact_negbin_sf(k: int, mu: str, size: int) -> float:
    """1 - sum_{j<k} C(j+size-1, j) p^size q^j, exactly, for an integer size."""
    m = Fraction(mu)
    p = Fraction(size) / (size + m)
    q = 1 - p
    cdf = sum((math.comb(j + size - 1, j) * p**size * q**j for j in range(k)), Fraction(0))
    return float(1 - cdf)


def exact_binomial_sf(k: int, n: int, p: Fraction) -> float:
    """sum_{j>=k} C(n, j) p^j (1-p)^(n-j), exactly: with p = a/b, one integer sum over b^n."""
    a, b = p.numerator, p.denominator
    return float(Fraction(sum(math.comb(n, j) * a**j * (b - a) ** (n - j) for j in range(max(k, 0), n + 1)), b**n))


def lgamma_poisson_sf(k: int, mu: float) -> float:
    """For large mu, where e^-mu underflows: sum the upper tail term by term in log space."""
    return math.fsum(math.exp(j * math.log(mu) - mu - math.lgamma(j + 1)) for j in range(k, k + int(mu) + 2000))


# --- Poisson ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mu", MUS)
def test_poisson_matches_exact_sum_for_small_counts(mu: str) -> None:
    for k in KS:
        expected = exact_poisson_sf(k, mu)
        assert poisson_sf(k, float(mu)) == pytest.approx(expected, rel=REL, abs=1e-300), (k, mu)


def test_poisson_small_counts_known_values() -> None:
    # P(X >= 2 | mu = 0.3) = 1 - e^-0.3 (1 + 0.3)
    assert poisson_sf(2, 0.3) == pytest.approx(1 - math.exp(-0.3) * 1.3, rel=1e-12)
    assert poisson_sf(2, 0.3) == pytest.approx(0.036936, abs=1e-6)
    assert poisson_sf(1, 0.3) == pytest.approx(1 - math.exp(-0.3), rel=1e-12)
    assert poisson_sf(3, 0.3) == pytest.approx(1 - math.exp(-0.3) * (1 + 0.3 + 0.045), rel=1e-9)
    # 40 cases where 4 were expected is astronomically unlikely, yet still a positive number.
    assert 0 < poisson_sf(40, 4.0) < 1e-20


def test_poisson_edges() -> None:
    assert poisson_sf(0, 3.0) == 1.0
    assert poisson_sf(-2, 3.0) == 1.0
    assert poisson_sf(0, 0.0) == 1.0
    assert poisson_sf(1, 0.0) == 0.0
    assert poisson_sf(1, -1.0) == 0.0
    assert poisson_sf(500, 0.3) == 0.0 or poisson_sf(500, 0.3) < 1e-300


@pytest.mark.parametrize(("k", "mu"), [(999, 1000.0), (1000, 1000.0), (700, 800.0), (950, 800.0), (30, 800.0)])
def test_poisson_large_mean_near_and_below_it(k: int, mu: float) -> None:
    # Dense national keys have expectations in the hundreds; e^-mu underflows below ~e^-745.
    assert poisson_sf(k, mu) == pytest.approx(lgamma_poisson_sf(k, mu), rel=1e-9)


@pytest.mark.parametrize("mu", [0.3, 4.0, 50.0, 900.0])
def test_poisson_decreases_in_k(mu: float) -> None:
    tails = [poisson_sf(k, mu) for k in range(int(3 * mu) + 20)]
    assert all(a >= b for a, b in pairwise(tails))
    assert tails[0] == 1.0
    assert all(0.0 <= t <= 1.0 for t in tails)


@pytest.mark.parametrize("k", [1, 2, 5, 10, 15])
def test_poisson_increases_in_mu(k: int) -> None:
    tails = [poisson_sf(k, mu / 10) for mu in range(1, 200)]
    assert all(a <= b for a, b in pairwise(tails))


# --- negative binomial -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 20])
@pytest.mark.parametrize("mu", MUS)
def test_negbin_matches_exact_sum_for_small_counts(mu: str, size: int) -> None:
    for k in KS:
        expected = exact_negbin_sf(k, mu, size)
        assert negbin_sf(k, float(mu), float(size)) == pytest.approx(expected, rel=REL, abs=1e-300), (k, mu)


@pytest.mark.parametrize("size", [0.5, 2.5])
def test_negbin_fractional_size_matches_pmf_sum(size: float) -> None:
    mu = 3.0
    p = size / (size + mu)

    def pmf(j: int) -> float:
        return math.exp(math.lgamma(j + size) - math.lgamma(size) - math.lgamma(j + 1)
                        + size * math.log(p) + j * math.log1p(-p))

    for k in KS:
        reference = math.fsum(pmf(j) for j in range(k, k + 3000))
        assert negbin_sf(k, mu, size) == pytest.approx(reference, rel=1e-8), k


def test_negbin_tends_to_poisson() -> None:
    for k, mu in [(2, 0.3), (10, 4.0), (25, 12.0), (3, 7.5)]:
        poisson = poisson_sf(k, mu)
        gaps = [abs(negbin_sf(k, mu, size) - poisson) / poisson for size in (1e1, 1e2, 1e3, 1e4, 1e5, 1e6)]
        assert all(a > b for a, b in pairwise(gaps)), gaps
        assert gaps[-1] < 1e-4
        assert negbin_sf(k, mu, 1e9) == poisson


def test_negbin_is_heavier_tailed_than_poisson_above_the_mean() -> None:
    for mu in (0.3, 4.0, 30.0):
        for k in (int(2 * mu) + 2, int(3 * mu) + 5):
            assert negbin_sf(k, mu, 20.0) > poisson_sf(k, mu)
            assert negbin_sf(k, mu, 2.0) > negbin_sf(k, mu, 20.0)


@pytest.mark.parametrize("size", [0.5, 5.0, 20.0])
def test_negbin_monotone(size: float) -> None:
    tails = [negbin_sf(k, 6.0, size) for k in range(60)]
    assert all(a >= b for a, b in pairwise(tails))
    by_mu = [negbin_sf(8, mu / 4, size) for mu in range(1, 120)]
    assert all(a <= b for a, b in pairwise(by_mu))


def test_negbin_edges() -> None:
    assert negbin_sf(0, 4.0, 20.0) == 1.0
    assert negbin_sf(-1, 4.0, 20.0) == 1.0
    assert negbin_sf(1, 0.0, 20.0) == 0.0
    # size = 1 is the geometric distribution: P(X >= k) = q^k.
    for k in range(8):
        assert negbin_sf(k, 3.0, 1.0) == pytest.approx((3.0 / 4.0) ** k, rel=1e-12)


# --- binomial --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "p"), [(1, "1/2"), (5, "1/3"), (15, "1/20"), (15, "9/10"), (40, "3/100"), (30, "1/2")])
def test_binomial_matches_exact_sum(n: int, p: str) -> None:
    prob = Fraction(p)
    for k in range(-1, n + 2):
        assert binomial_sf(k, n, float(prob)) == pytest.approx(exact_binomial_sf(k, n, prob), rel=REL,
                                                              abs=1e-300), k


def test_binomial_edges() -> None:
    assert binomial_sf(0, 10, 0.3) == 1.0
    assert binomial_sf(-3, 10, 0.3) == 1.0
    assert binomial_sf(11, 10, 0.3) == 0.0
    assert binomial_sf(1, 0, 0.3) == 0.0
    assert binomial_sf(0, 0, 0.3) == 1.0
    assert binomial_sf(1, 10, 0.0) == 0.0
    assert binomial_sf(10, 10, 1.0) == 1.0
    assert binomial_sf(10, 10, 0.5) == pytest.approx(0.5**10, rel=1e-12)
    assert binomial_sf(1, 10, 0.2) == pytest.approx(1 - 0.8**10, rel=1e-12)
    assert 0 < binomial_sf(30, 30, 0.05) < 1e-30


@pytest.mark.parametrize(("k", "n", "p"), [(1, 2000, 0.5), (900, 2000, 0.5), (100, 5000, 0.2), (2, 100_000, 0.01)])
def test_binomial_below_the_mean_is_near_one(k: int, n: int, p: float) -> None:
    # Far below the mean the first pmf term underflows; the tail is still (nearly) 1.
    complement = binomial_sf(n - k + 1, n, 1 - p)
    assert binomial_sf(k, n, p) == pytest.approx(1 - complement, abs=1e-12)
    assert binomial_sf(k, n, p) > 0.99


def test_binomial_complement_identity() -> None:
    # P(X >= k) + P(n - X >= n - k + 1) = 1
    for n, p in [(12, 0.3), (40, 0.05), (200, 0.6)]:
        for k in range(1, n + 1):
            assert binomial_sf(k, n, p) + binomial_sf(n - k + 1, n, 1 - p) == pytest.approx(1.0, abs=1e-12)


def test_binomial_monotone() -> None:
    tails = [binomial_sf(k, 50, 0.2) for k in range(52)]
    assert all(a >= b for a, b in pairwise(tails))
    by_p = [binomial_sf(5, 50, p / 100) for p in range(1, 100)]
    assert all(a <= b for a, b in pairwise(by_p))
    by_n = [binomial_sf(5, n, 0.1) for n in range(5, 120)]
    assert all(a <= b for a, b in pairwise(by_n))


def test_score() -> None:
    assert score(1.0) == 0.0
    assert score(1e-4) == pytest.approx(4.0)
    assert score(0.0) == 300.0


# --- large counts: the special-function paths agree with term-by-term sums ------------------------


def _negbin_sum(k: int, mu: float, size: float) -> float:
    p = size / (size + mu)
    term = math.exp(math.lgamma(k + size) - math.lgamma(size) - math.lgamma(k + 1)
                    + size * math.log(p) + k * math.log1p(-p))
    total, j = 0.0, k
    while term > total * 1e-18:
        total += term
        term *= (1 - p) * (j + size) / (j + 1)
        j += 1
    return total


@pytest.mark.parametrize(("k", "mu", "size"), [(40, 12.0, 20.0), (150, 100.0, 20.0), (300, 120.0, 5.0),
                                               (900, 800.0, 50.0), (60, 30.0, 1e6)])
def test_negbin_large_counts_match_the_sum(k: int, mu: float, size: float) -> None:
    assert negbin_sf(k, mu, size) == pytest.approx(_negbin_sum(k, mu, size), rel=1e-9)


@pytest.mark.parametrize(("k", "n", "p"), [(60, 200, "0.1"), (500, 2000, "0.2"), (45, 100, "0.5")])
def test_binomial_large_counts_match_the_sum(k: int, n: int, p: str) -> None:
    # The reference takes p as the exact decimal (like MUS): Fraction(0.2) of the binary float has a
    # 2**54 denominator, and summing its powers up to 2000 took a minute. The float the code gets differs
    # from the decimal by < 1e-16 relative, which moves these tails by far less than the tolerance.
    # abs=1e-300: without it approx also accepts anything within 1e-12, which holds both tiny tails here.
    expected = exact_binomial_sf(k, n, Fraction(p))
    assert binomial_sf(k, n, float(p)) == pytest.approx(expected, rel=1e-9, abs=1e-300)
