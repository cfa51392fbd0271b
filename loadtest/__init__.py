"""Load tests: locust users per protocol (``users``), load shapes (``scenarios``), the runner behind
``make loadtest`` (``run``), capacity and the SageMaker autoscaling target (``capacity``), plus the local
endpoint launcher and request bodies they share with the benchmarks and tests."""
