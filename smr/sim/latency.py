"""Latency distributions for links and disks, drawn from the run's seeded generator."""

from __future__ import annotations

import math
import random
from typing import Callable, Literal

import attrs


@attrs.frozen
class Latency:
    """A one-way delay distribution in milliseconds.

    ``constant``: always ``mean``.  ``uniform``: between ``low`` and ``high``.
    ``normal``: mean ``mean``, deviation ``sd``, truncated at 0.
    ``lognormal``: median ``mean``, shape ``sigma``.
    """

    dist: Literal["constant", "uniform", "normal", "lognormal"] = "constant"
    mean: float = 1.0
    low: float = 0.0
    high: float = 0.0
    sd: float = 0.0
    sigma: float = 0.5

    def __attrs_post_init__(self) -> None:
        if self.mean < 0 or self.low < 0 or self.sd < 0 or self.sigma < 0:
            raise ValueError("latency parameters must not be negative")
        if self.dist == "uniform" and self.high < self.low:
            raise ValueError("uniform latency needs high >= low")

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """Return a zero-argument function drawing delays from ``rng`` (fast path of ``sample``)."""
        if self.dist == "constant":
            mean = self.mean
            return lambda: mean
        if self.dist == "uniform":
            low, span, draw = self.low, self.high - self.low, rng.random
            return lambda: low + span * draw()
        return lambda: self.sample(rng)

    def sample(self, rng: random.Random) -> float:
        """Draw one non-negative delay."""
        if self.dist == "constant":
            return self.mean
        if self.dist == "uniform":
            return rng.uniform(self.low, self.high)
        if self.dist == "normal":
            return max(0.0, rng.gauss(self.mean, self.sd))
        return math.exp(rng.gauss(math.log(max(self.mean, 1e-9)), self.sigma))

    def describe(self) -> str:
        """A short human description, e.g. ``uniform(1,3)ms``."""
        if self.dist == "constant":
            return f"{self.mean:g}ms"
        if self.dist == "uniform":
            return f"uniform({self.low:g},{self.high:g})ms"
        if self.dist == "normal":
            return f"normal({self.mean:g},{self.sd:g})ms"
        return f"lognormal(median={self.mean:g},sigma={self.sigma:g})ms"


def constant(ms: float) -> Latency:
    """A fixed delay of ``ms`` milliseconds."""
    return Latency("constant", mean=ms)


def uniform(low: float, high: float) -> Latency:
    """A delay uniform between ``low`` and ``high`` milliseconds."""
    return Latency("uniform", low=low, high=high)
