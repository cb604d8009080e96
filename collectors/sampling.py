"""Which proxied requests get copied into the tee.

Two knobs, applied in order: ``rate`` (share of requests, 0..1) and ``max_per_second`` (a token
bucket that caps the copy rate whatever the traffic, so a traffic spike cannot make monitoring
eat the model's CPU). ``deterministic=True`` samples exactly every ``1/rate``-th request (no
randomness, handy in tests and for low rates that must not clump); otherwise each request is
sampled with probability ``rate``.

>>> s = Sampler(rate=0.25, deterministic=True)
>>> [s.should_sample() for _ in range(8)]
[False, False, False, True, False, False, False, True]
>>> s.sampled, s.not_sampled
(2, {'rate': 6, 'rate_limited': 0})
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from driftline.errors import ConfigError

__all__ = ["Sampler"]


class Sampler:
    """Decides per request whether to sample it. Called from one thread (the proxy's loop)."""

    def __init__(self, rate: float = 1.0, max_per_second: float | None = None, *,
                 deterministic: bool = False, burst: float | None = None, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0 or math.isnan(rate):
            raise ConfigError(f"sampling rate must be within 0..1, got {rate!r}",
                              key="sampling.rate", fix="use e.g. 1.0 for every request or 0.1")
        if max_per_second is not None and (not max_per_second > 0 or math.isinf(max_per_second)):
            raise ConfigError(f"max_per_second must be a positive number, got {max_per_second!r}",
                              key="sampling.max_per_second", fix="omit it for no limit")
        if burst is not None and not burst >= 1:
            raise ConfigError(f"burst must be at least 1, got {burst!r}", key="sampling.burst")
        self.rate = float(rate)
        self.max_per_second = None if max_per_second is None else float(max_per_second)
        self.deterministic = deterministic
        self.burst = (float(burst) if burst is not None
                      else max(1.0, self.max_per_second or 1.0))
        self._clock = clock
        self._random = random.Random(seed).random
        self._acc = 0.0
        self._tokens = self.burst
        self._last = clock()
        self._sampled = 0
        self._skipped_rate = 0
        self._skipped_limit = 0

    def should_sample(self) -> bool:
        """Decide for one request; counts the outcome."""
        rate = self.rate
        if rate < 1.0:
            if self.deterministic:
                self._acc += rate
                if self._acc < 1.0 - 1e-12:
                    self._skipped_rate += 1
                    return False
                self._acc -= 1.0
            elif self._random() >= rate:
                self._skipped_rate += 1
                return False
        mps = self.max_per_second
        if mps is not None:
            now = self._clock()
            tokens = min(self.burst, self._tokens + (now - self._last) * mps)
            self._last = now
            if tokens < 1.0:
                self._tokens = tokens
                self._skipped_limit += 1
                return False
            self._tokens = tokens - 1.0
        self._sampled += 1
        return True

    @property
    def sampled(self) -> int:
        """Requests chosen for sampling since start."""
        return self._sampled

    @property
    def not_sampled(self) -> dict[str, int]:
        """Requests not sampled, by reason: ``rate`` (by design) or ``rate_limited`` (bucket empty)."""
        return {"rate": self._skipped_rate, "rate_limited": self._skipped_limit}

    def __repr__(self) -> str:
        return (f"Sampler(rate={self.rate}, max_per_second={self.max_per_second}, "
                f"deterministic={self.deterministic})")
