"""Key choosers: uniform, zipfian and a moving hotspot, all driven by the run's generator."""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Literal

import attrs

Distribution = Literal["uniform", "zipfian", "hotspot"]


@attrs.define
class KeyChooser:
    """Picks key indexes in ``range(count)`` by ``distribution``.

    ``zipfian``: P(k) proportional to 1/(k+1)^``skew``.  ``hotspot``: a fraction
    ``hot_fraction`` of the keys gets ``hot_share`` of the picks, and the hot
    window moves forward by one key every ``hotspot_period`` picks.
    """

    count: int
    distribution: Distribution = "uniform"
    skew: float = 0.99
    hot_fraction: float = 0.1
    hot_share: float = 0.9
    hotspot_period: int = 200
    _cdf: list[float] = attrs.field(factory=list)
    _picks: int = 0

    def __attrs_post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a workload needs at least one key")
        if self.distribution not in ("uniform", "zipfian", "hotspot"):
            raise ValueError(f"unknown key distribution {self.distribution!r}")
        if self.distribution == "zipfian":
            weights = [1.0 / (k + 1) ** self.skew for k in range(self.count)]
            self._cdf = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> int:
        """Return the next key index."""
        self._picks += 1
        if self.distribution == "uniform":
            return rng.randrange(self.count)
        if self.distribution == "zipfian":
            return min(bisect.bisect_left(self._cdf, rng.random() * self._cdf[-1]), self.count - 1)
        hot = max(1, int(self.count * self.hot_fraction))
        start = (self._picks // self.hotspot_period) % self.count
        if rng.random() < self.hot_share:
            return (start + rng.randrange(hot)) % self.count
        return rng.randrange(self.count)
