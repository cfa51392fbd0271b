"""Load shapes: steady load, a step ramp that finds the knee, and multi-model-endpoint churn.

Durations come from environment variables so ``loadtest.run`` (and the smoke test) can bound a run:
``LOADTEST_USERS`` and ``LOADTEST_STEADY_S`` (steady), ``LOADTEST_STEP_S`` and ``LOADTEST_MAX_USERS``
(ramp), ``LOADTEST_ARCHIVES`` (N) and ``LOADTEST_PHASE_S`` (churn). Every shape returns ``None``
at its end, so locust stops by itself.
"""

from __future__ import annotations

import os

from locust import LoadTestShape


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class SteadyShape(LoadTestShape):
    """A fixed number of users for a fixed time: the baseline every change is compared against."""

    def tick(self) -> tuple[int, float] | None:
        users = _env_int("LOADTEST_USERS", 3)
        return (users, users) if self.get_run_time() < _env_float("LOADTEST_STEADY_S", 20) else None


class StepRampShape(LoadTestShape):
    """Users 1, 2, 4, 8… up to ``LOADTEST_MAX_USERS``, each for ``LOADTEST_STEP_S`` seconds.

    Doubling (rather than +1) reaches saturation within a short run; the knee is the last step
    where throughput still grows while p90 latency stays flat (``loadtest.capacity`` picks it).
    """

    def tick(self) -> tuple[int, float] | None:
        step = int(self.get_run_time() // _env_float("LOADTEST_STEP_S", 8))
        users = 2**step
        return (users, users) if users <= _env_int("LOADTEST_MAX_USERS", 16) else None


class ChurnShape(LoadTestShape):
    """Multi-model endpoint churn over archives ``fraud_0`` … ``fraud_<2N-1>`` (endpoint started with ``--max-loaded=N``).

    Phase ``cold``: the first N archives, each loaded on first call (cache misses); ``warm``: the same N
    again (hits only); ``churn``: all 2N archives round-robin, more than fit, so LRU evicts and the hit
    ratio falls. ``EndpointUser.targets`` asks this shape for the current phase's archives.
    """

    PHASES = ("cold", "warm", "churn")

    def phase(self) -> str | None:
        index = int(self.get_run_time() // _env_float("LOADTEST_PHASE_S", 10))
        return self.PHASES[index] if index < len(self.PHASES) else None

    def targets(self) -> list[str]:
        archives = _env_int("LOADTEST_ARCHIVES", 3)
        count = 2 * archives if self.phase() == "churn" else archives
        return [f"fraud_{version}.tar.gz" for version in range(count)]

    def tick(self) -> tuple[int, float] | None:
        users = _env_int("LOADTEST_USERS", 2)
        return None if self.phase() is None else (users, users)


SCENARIOS: dict[str, type[LoadTestShape]] = {"steady": SteadyShape, "ramp": StepRampShape, "churn": ChurnShape}
