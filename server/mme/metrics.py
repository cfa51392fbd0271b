"""Prometheus metrics under the names SageMaker uses for multi-model endpoints.

``ModelCacheHit`` is a summary of 1 (already loaded) or 0 (cold) per
invocation, so ``ModelCacheHit_sum / ModelCacheHit_count`` is SageMaker's
"Average" statistic, the hit ratio. Times are seconds (SageMaker reports
microseconds in CloudWatch).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

_LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class EndpointMetrics:
    """One registry per endpoint (tests run several side by side)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.loaded_model_count = Gauge("LoadedModelCount", "Archives loaded in Triton", registry=r)
        self.cache_hit = Summary("ModelCacheHit", "1 when the target was already loaded at invocation, else 0", registry=r)
        self.loading_wait_time = Histogram(
            "ModelLoadingWaitTime", "Seconds an invocation waited for its archive to download and load", buckets=_LOAD_BUCKETS, registry=r
        )
        self.downloading_time = Histogram("ModelDownloadingTime", "Seconds to fetch an archive from the store", buckets=_LOAD_BUCKETS, registry=r)
        self.extracting_time = Histogram(
            "ModelVerifyExtractTime", "Seconds to verify checksums and extract an archive", buckets=_LOAD_BUCKETS, registry=r
        )
        self.loading_time = Histogram("ModelLoadingTime", "Seconds for Triton to load an archive's models", buckets=_LOAD_BUCKETS, registry=r)
        self.unloading_time = Histogram("ModelUnloadingTime", "Seconds to unload an archive", buckets=_LOAD_BUCKETS, registry=r)
        self.memory_utilization = Gauge("MemoryUtilization", "Resident memory of Triton and its stubs, percent of the budget", registry=r)
        self.resident_bytes = Gauge("TritonResidentBytes", "Resident memory of Triton and its stubs, bytes", registry=r)
        self.invocations = Counter("Invocations", "InvokeEndpoint calls", ["target"], registry=r)
        self.errors = Counter("InvocationErrors", "InvokeEndpoint calls answered with an error", ["target", "code"], registry=r)
        self.latency = Histogram("ModelLatency", "Seconds from request to answer, per target", ["target"], buckets=_LATENCY_BUCKETS, registry=r)
        self.evictions = Counter("ModelEvictions", "Archives unloaded to make room", registry=r)

    def watch_memory(self, resident: Callable[[], int], budget: int | None) -> None:
        """Read memory when scraped, not on a timer."""
        self.resident_bytes.set_function(resident)
        self.memory_utilization.set_function(lambda: 100.0 * resident() / budget if budget else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
