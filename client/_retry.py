"""When to try a failed request again, and how long to wait first.

Only :class:`Unavailable` is retried — 429/503 answers and connections that
could not be made — because those say "not now" and nothing was done. A 4xx
will fail the same way again; a :class:`Timeout` may still be running on the
server, so repeating it adds load exactly when the server is slowest.

Waits use exponential backoff with full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter"): attempt *k* waits a uniform random time in
``[0, min(cap, base * 2**k)]``, which spreads out clients that failed together.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import ClientError, Unavailable

DEFAULT_RETRIES = 3
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 2.0


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``retries`` more attempts after the first, on :class:`Unavailable` only."""

    retries: int = DEFAULT_RETRIES
    base_s: float = BACKOFF_BASE_S
    cap_s: float = BACKOFF_CAP_S
    uniform: Callable[[float, float], float] = random.uniform

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    def backoff(self, attempt: int, error: ClientError) -> float | None:
        """Seconds to wait before retrying after failed attempt ``attempt`` (0-based), or ``None`` to give up.

        Examples
        --------
        >>> policy = RetryPolicy(uniform=lambda low, high: high)
        >>> [policy.backoff(k, Unavailable("busy")) for k in range(4)]
        [0.1, 0.2, 0.4, None]
        """
        if attempt >= self.retries or not isinstance(error, Unavailable):
            return None
        return self.uniform(0.0, min(self.cap_s, self.base_s * 2**attempt))
