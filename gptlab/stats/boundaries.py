"""The group-sequential boundaries behind `gptlab.stats.sequential`: Lan-DeMets alpha spending (Lan & DeMets 1983,
Biometrika 70:659, eq. 2; Pocock-type spending of Kim & DeMets 1987, Biometrics 43:857, and the O'Brien-Fleming-type
one of Lan & DeMets), the z boundaries it implies, computed by recursive numerical integration of the score's
sub-density over the continuation region (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19), and
the sequential p-value of the stagewise ordering (Jennison & Turnbull 2000, ch. 8.4)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special
from scipy import stats as sps
from scipy.optimize import brentq

SPENDING = ("pocock", "obrien_fleming")
_SQRT_2PI = math.sqrt(2 * math.pi)


def _pdf(x: np.ndarray) -> np.ndarray:  # the standard normal density, as scipy's norm.pdf computes it, minus its checks
    return np.exp(-x ** 2 / 2.0) / _SQRT_2PI


def spent(t: np.ndarray | float, alpha: float, spending: str) -> np.ndarray:
    """Lan-DeMets cumulative alpha spent by information fraction t (Pocock-type or O'Brien-Fleming-type)."""
    t = np.asarray(t, dtype=float)
    if spending == "pocock":  # Kim & DeMets (1987)
        return alpha * np.log1p((math.e - 1) * t)
    return 2 * sps.norm.sf(sps.norm.isf(alpha / 2) / np.sqrt(t))  # Lan & DeMets (1983)


@lru_cache(maxsize=4096)
def _z_boundaries(t: tuple[float, ...], alpha: float, two_sided: bool, spending: str,
                  grid: int = 401, spend_all_last: bool = False) -> tuple[float, ...]:
    """z boundaries c_j with P(first crossing at look j | H0) = alpha(t_j) - alpha(t_{j-1}).

    The score S_j = Z_j sqrt(t_j) has independent N(0, t_j - t_{j-1}) increments; its sub-density on
    the continuation region is carried from look to look on a Simpson grid (Jennison & Turnbull ch. 19).
    A one-sided test rejects for large Z; a two-sided one for large |Z|.
    """
    cum = _cumulative(t, alpha, two_sided, spending)
    if spend_all_last:  # the last planned look with less information than planned: what is left is spent here
        cum[-1] = alpha
    bounds, u, w, f = _looks(t[:-1], alpha, two_sided, spending, grid)
    return bounds + (_bound(t, len(t) - 1, cum, u, w, f, two_sided),)


def _cumulative(t: tuple[float, ...], alpha: float, two_sided: bool, spending: str) -> np.ndarray:
    # two-sided: alpha / 2 spent on each side, as gsDesign and Jennison & Turnbull do
    return 2 * spent(np.asarray(t), alpha / 2, spending) if two_sided else spent(np.asarray(t), alpha, spending)


@lru_cache(maxsize=2048)
def _looks(t: tuple[float, ...], alpha: float, two_sided: bool, spending: str, grid: int):  # noqa: ANN202
    """(boundaries, grid, Simpson weights, sub-density of S) after the looks at fractions t, each spending by the
    function; memoised by prefix, so a look at a new information fraction costs one look's integration."""
    if not t:
        return (), None, None, None
    bounds, u, w, f = _looks(t[:-1], alpha, two_sided, spending, grid)
    c = _bound(t, len(t) - 1, _cumulative(t, alpha, two_sided, spending), u, w, f, two_sided)
    return (*bounds, c), *_carry(t, len(t) - 1, c, u, w, f, two_sided, grid)


def _bound(t: tuple[float, ...], j: int, cum: np.ndarray, u, w, f, two_sided: bool) -> float:  # noqa: ANN001
    """Look j's boundary: the crossing chance there, given no earlier crossing, is cum[j] - cum[j - 1]."""
    tj = t[j]
    target = cum[j] - (cum[j - 1] if j else 0.0)
    if j == 0:
        return float(sps.norm.isf(target / 2 if two_sided else target))
    sd = math.sqrt(tj - t[j - 1])
    mass = w * f

    def crossed(c: float) -> float:
        hi = special.ndtr(-((c * math.sqrt(tj) - u) / sd))  # norm.sf, as scipy computes it
        lo = special.ndtr((-c * math.sqrt(tj) - u) / sd) if two_sided else 0.0
        return float(np.sum(mass * (hi + lo))) - target

    return float(math.inf if target <= 0 or crossed(40.0) > 0 else brentq(crossed, 0.0, 40.0, xtol=1e-10))


def _carry(t: tuple[float, ...], j: int, c: float, u, w, f, two_sided: bool, grid: int):  # noqa: ANN001, ANN202
    """The sub-density of S_j on look j's continuation region (|Z_j| < c, or Z_j < c one-sided), from look j - 1's."""
    tj = t[j]
    top = c * math.sqrt(tj) if math.isfinite(c) else 10 * math.sqrt(tj)
    bottom = -top if two_sided else -10 * math.sqrt(tj)
    new_u = np.linspace(bottom, top, grid)
    new_w = np.full(grid, 2.0)
    new_w[1::2], new_w[0], new_w[-1] = 4.0, 1.0, 1.0
    new_w *= (top - bottom) / (grid - 1) / 3
    if j == 0:
        new_f = _pdf(new_u / math.sqrt(tj)) / math.sqrt(tj)
    else:
        sd = math.sqrt(tj - t[j - 1])
        kernel = _pdf((new_u[:, None] - u[None, :]) / sd) / sd
        new_f = kernel @ (w * f)
    return new_u, new_w, new_f


def stagewise_p(t: tuple[float, ...], alpha: float, spending: str, z: float, final: bool = False) -> float:
    """Two-sided p of diff = 0 under the stagewise ordering (Armitage 1957; Fairbanks & Madsen 1982; Jennison &
    Turnbull 2000, ch. 8.4) for a test ending at the last of the looks at fractions `t` with |Z| = z there, its
    earlier looks not crossed (two-sided boundaries of level `alpha`): the null chance of crossing earlier, plus
    that of |Z| >= z at this look without an earlier crossing. It is <= alpha exactly when z reaches this look's
    boundary, and > alpha for a test that reached its last look without crossing: p and verdict agree. `final` (the
    last look spends what is left) moves only the last look's boundary, which the p does not use."""
    t = tuple(t)
    if len(t) == 1:
        return float(2 * sps.norm.sf(abs(z)))
    _, u, w, f = _looks(t[:-1], alpha, True, spending, 401)  # the sub-density its boundaries carried (memoised)
    z = min(abs(z), 1e3)
    tj, sd = t[-1], math.sqrt(t[-1] - t[-2])
    inside = special.ndtr((z * math.sqrt(tj) - u) / sd) - special.ndtr((-z * math.sqrt(tj) - u) / sd)
    return float(min(1.0, max(0.0, 1.0 - np.sum(w * f * inside))))
