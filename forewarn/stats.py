"""Exact upper tails of count distributions, correct down to counts of 0 to 3.

Spike scores and trait isolation both ask "how likely is at least this many?".
A Gaussian z-score answers that badly for small counts, so small counts sum the
probability mass in log space; large counts use the regularized incomplete beta
and gamma functions (scipy's), whose cost does not grow with the count.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

_TINY = 1e-17
_DIRECT = 40
"""Counts below this are summed term by term; from here the special functions are cheaper."""


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (scipy's, which is accurate far into the tails).

    >>> round(betainc(2.0, 3.0, 0.4), 6)   # 1 - (1-x)^4 - 4x(1-x)^3 ... = 0.5248
    0.5248
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return float(special.betainc(a, b, x))


def gammainc_lower(a: float, x: float) -> float:
    """The regularized lower incomplete gamma function P(a, x) (scipy's).

    >>> round(gammainc_lower(1.0, 2.0), 6)   # 1 - e^-2
    0.864665
    """
    if x <= 0.0:
        return 0.0
    return float(special.gammainc(a, x))


def _upper_tail(k: int, log_pmf_at_k: float, ratio: object) -> float:
    """Sum pmf(j) for j >= k, given log pmf(k) and pmf(j+1)/pmf(j) as a function of j."""
    term = math.exp(log_pmf_at_k)
    total = term
    j = k
    step = ratio  # callable; typed loosely to keep the hot loop plain
    while True:
        term *= step(j)  # type: ignore[operator]
        j += 1
        total += term
        if term <= total * _TINY or term == 0.0:
            return min(1.0, total)


def poisson_sf(k: int, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu).

    >>> round(poisson_sf(2, 0.3), 4)
    0.0369
    >>> poisson_sf(0, 5.0)
    1.0
    >>> poisson_sf(40, 4.0) < 1e-20
    True
    """
    if k <= 0:
        return 1.0
    if mu <= 0.0:
        return 0.0
    if k >= _DIRECT:
        return gammainc_lower(float(k), mu)
    log_pmf = k * math.log(mu) - mu - math.lgamma(k + 1)
    if k < mu:
        # Below the mean the tail is large; 1 - CDF is accurate there.
        return max(0.0, 1.0 - _poisson_cdf(k - 1, mu))
    return _upper_tail(k, log_pmf, lambda j: mu / (j + 1))


def _poisson_cdf(k: int, mu: float) -> float:
    # Sum down from pmf(k), the largest term for k < mu, scaled to 1: starting from
    # exp(-mu) would underflow to 0 for mu above ~745 and give a CDF of 0.
    term = total = 1.0
    for j in range(k, 0, -1):
        term *= j / mu
        total += term
        if term <= total * _TINY:
            break
    return min(1.0, total * math.exp(k * math.log(mu) - mu - math.lgamma(k + 1)))


def negbin_sf(k: int, mu: float, size: float) -> float:
    """P(X >= k) for a negative binomial with mean `mu` and dispersion `size`.

    The variance is mu + mu**2 / size; a large size tends to the Poisson.

    >>> round(negbin_sf(10, 4.0, 1e9), 4) == round(poisson_sf(10, 4.0), 4)
    True
    >>> negbin_sf(10, 4.0, 2.0) > poisson_sf(10, 4.0)
    True
    """
    if k <= 0:
        return 1.0
    if mu <= 0.0:
        return 0.0
    if size > 1e7:
        return poisson_sf(k, mu)
    # I_q(k, size) with q = mu / (size + mu): one scipy call, exact to ~1e-8 relative at any count
    return betainc(float(k), size, mu / (size + mu))


def negbin_sfs(k: np.ndarray, mu: np.ndarray, size: np.ndarray) -> np.ndarray:
    """`negbin_sf` of arrays (k >= 1, mu > 0), Poisson where the size is past 1e7.

    >>> k, mu = np.array([10, 3]), np.array([4.0, 2.0])
    >>> bool(np.allclose(negbin_sfs(k, mu, np.array([2.0, 1e9])), [negbin_sf(10, 4.0, 2.0), poisson_sf(3, 2.0)]))
    True
    """
    k = np.asarray(k, dtype=float)
    poisson = np.asarray(size) > 1e7
    shape = np.where(poisson, 1.0, size)
    tails = special.betainc(k, shape, mu / (shape + mu))
    return np.where(poisson, special.gammainc(k, mu), tails) if poisson.any() else tails


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p).

    >>> round(binomial_sf(1, 1, 0.5), 3)
    0.5
    >>> binomial_sf(30, 30, 0.05) < 1e-30
    True
    """
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if n - k >= _DIRECT and k >= _DIRECT:
        return betainc(float(k), float(n - k + 1), p)
    if k < n * p:
        # Below the mean pmf(k) can underflow to 0; take the complement's upper tail instead.
        return max(0.0, 1.0 - binomial_sf(n - k + 1, n, 1.0 - p))
    log_pmf = (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )
    odds = p / (1.0 - p)
    total = 0.0
    term = math.exp(log_pmf)
    for j in range(k, n + 1):
        total += term
        if term <= total * _TINY:
            break
        term *= odds * (n - j) / (j + 1)
    return min(1.0, total)


def score(p_value: float) -> float:
    """The spike score: -log10 of the tail probability, capped for p = 0."""
    return 300.0 if p_value <= 0.0 else -math.log10(p_value)
