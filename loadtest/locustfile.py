"""The locustfile: concrete users (tasks only) and the shape named by ``LOADTEST_SCENARIO``.

Run by ``loadtest.run`` as ``locust -f loadtest/locustfile.py --headless …``; pick users by class name
on the command line. Locust accepts one shape per file, hence the selection by environment variable.
"""

from __future__ import annotations

import os

from locust import task

from tritonmm.loadtest.scenarios import SCENARIOS
from tritonmm.loadtest.users import EndpointUser, TritonGrpcUser, TritonHttpUser


class FraudHttpUser(TritonHttpUser):
    @task
    def score(self) -> None:
        self.infer()


class FraudGrpcUser(TritonGrpcUser):
    @task
    def score(self) -> None:
        self.infer()


class FraudEndpointUser(EndpointUser):
    @task
    def score(self) -> None:
        self.invoke()


Shape = SCENARIOS[os.environ.get("LOADTEST_SCENARIO", "steady")]
