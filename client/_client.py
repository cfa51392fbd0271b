"""``Client`` and ``AsyncClient``: one request policy over any transport.

Both share :class:`_BaseClient`, which owns what must not differ between
protocols or between sync and async code: checking a request against the
model's schema, splitting it into batches the model accepts, and deciding
whether a failure is retried — the single place where transport errors become
:mod:`tritonmm.client` errors. The two subclasses only differ in how they wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any, TypeVar, Unpack

import numpy as np

from ._chunking import join, split
from ._errors import as_client_error
from ._pipelines import (
    BUILTIN_SCHEMAS,
    FRAUD_MODEL,
    NO_SCORES,
    PERFORMER_MODEL,
    Transactions,
    card_histories,
    card_scores_table,
    scores_table,
    transactions_to_inputs,
)
from ._retry import DEFAULT_RETRIES, RetryPolicy
from ._transports import AsyncTransport, Transport
from ._transports import sagemaker as _sagemaker
from ._transports.grpc import AsyncGrpcTransport, GrpcTransport
from ._transports.http import AsyncHttpTransport, HttpTransport
from ._transports.sagemaker import AwsOptions
from ._types import ModelConfig
from ._validate import check_request

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_HTTP_URL = "127.0.0.1:8000"
DEFAULT_GRPC_URL = "127.0.0.1:8001"
DEFAULT_MAX_CONCURRENCY = 4
SCORE_OUTPUTS = ("probability", "label")

ArrayLike = Any  # np.ndarray, or anything np.asarray turns into one (lists of numbers or strings)


def _sagemaker_transport(endpoint_name: str, target_model: str, schemas: Mapping[str, ModelConfig] | None,
                         timeout: float, aws: AwsOptions) -> _sagemaker.SageMakerTransport:
    """The built-in pipeline schemas, overridden or extended by the caller's."""
    return _sagemaker.connect(endpoint_name=endpoint_name, target_model=target_model,
                              schemas={**BUILTIN_SCHEMAS, **(schemas or {})}, timeout=timeout, **aws)


class _BaseClient:
    """Validation, chunking and the retry decision, shared by :class:`Client` and :class:`AsyncClient`."""

    def __init__(self, *, retries: int) -> None:
        self._retry = RetryPolicy(retries=retries)
        self._configs: dict[str, ModelConfig] = {}

    @staticmethod
    def _chunks(model: str, config: ModelConfig, inputs: Mapping[str, ArrayLike],
                outputs: Sequence[str] | None) -> list[dict[str, np.ndarray]]:
        """Check the request; return it as requests of at most ``max_batch_size`` rows."""
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        batch = check_request(model, config, arrays, outputs)
        return split(arrays, batch, config["max_batch_size"])

    def _backoff_or_raise(self, exc: Exception, attempt: int) -> float:
        """Seconds to wait before retrying after ``exc`` on attempt ``attempt``; raise the mapped error otherwise.

        The one boundary where library errors become :class:`ClientError`\\ s; errors
        that are not a server's or the network's (bugs) propagate unchanged.
        """
        error = as_client_error(exc)
        if error is None:
            raise exc
        delay = self._retry.backoff(attempt, error)
        if delay is None:
            if error is exc:
                raise error
            raise error from exc
        return delay


class Client(_BaseClient):
    """A blocking client for models on Triton (HTTP or gRPC) or behind a SageMaker endpoint.

    Create one with :meth:`http`, :meth:`grpc` or :meth:`sagemaker`; use it from one
    thread at a time and close it (or use ``with``) when done.

    Parameters
    ----------
    transport : Transport
        How requests travel (the constructors build one; pass your own to test or extend).
    retries : int
        Further attempts after a failure that says "try later" (429/503, no connection).
    sleep : callable
        How to wait between attempts (``time.sleep``; tests pass a recorder).

    Examples
    --------
    >>> with Client.http("127.0.0.1:8000") as client:                      # doctest: +SKIP
    ...     scores = client.score_transactions(frame)
    ...     outputs = client.infer("fraud_xgboost", {"input__0": features})
    """

    def __init__(self, transport: Transport, *, retries: int = DEFAULT_RETRIES,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(retries=retries)
        self._transport = transport
        self._sleep = sleep

    @classmethod
    def http(cls, url: str = DEFAULT_HTTP_URL, *, timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
             use_shared_memory: bool = False, sleep: Callable[[float], None] = time.sleep) -> Client:
        """A client for Triton's HTTP endpoint (``host:port``, optionally with ``http://`` or ``https://``).

        ``timeout`` bounds connecting and each network read, in seconds.
        ``use_shared_memory=True`` passes fixed-size tensors through system shared
        memory: only for a server on this host, and only worth it for large tensors.

        Examples
        --------
        >>> client = Client.http("127.0.0.1:8000", timeout=10, retries=5)   # doctest: +SKIP
        """
        transport = HttpTransport(url, timeout=timeout, use_shared_memory=use_shared_memory)
        return cls(transport, retries=retries, sleep=sleep)

    @classmethod
    def grpc(cls, url: str = DEFAULT_GRPC_URL, *, timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
             use_shared_memory: bool = False, sleep: Callable[[float], None] = time.sleep) -> Client:
        """A client for Triton's gRPC endpoint (``host:port``); ``timeout`` is each call's deadline.

        Examples
        --------
        >>> client = Client.grpc("127.0.0.1:8001")                          # doctest: +SKIP
        """
        transport = GrpcTransport(url, timeout=timeout, use_shared_memory=use_shared_memory)
        return cls(transport, retries=retries, sleep=sleep)

    @classmethod
    def sagemaker(cls, endpoint_name: str, target_model: str, *, schemas: Mapping[str, ModelConfig] | None = None,
                  timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                  sleep: Callable[[float], None] = time.sleep, **aws: Unpack[AwsOptions]) -> Client:
        """A client for a SageMaker multi-model endpoint (or the local one); needs the ``sagemaker`` extra.

        Every request goes to ``target_model`` (the archive, e.g. ``"fraud_2.tar.gz"``);
        the ``model`` named in :meth:`infer` selects the schema it is checked against:
        the built-in ``fraud`` one, or one given in ``schemas``. ``aws`` options
        (:class:`AwsOptions`): ``endpoint_url``, ``region_name``, ``session`` (a
        ``boto3.Session``), ``aws_access_key_id`` / ``aws_secret_access_key`` /
        ``aws_session_token``, ``anonymous`` (unsigned requests: the local endpoint
        started without ``--auth``); credentials and region otherwise default to
        boto3's own (environment, ``~/.aws``). ``timeout`` bounds connecting and reading.

        Examples
        --------
        >>> client = Client.sagemaker("fraud-mme", "fraud_2.tar.gz", region_name="eu-west-1")   # doctest: +SKIP
        >>> local = Client.sagemaker("local", "fraud_1.tar.gz", endpoint_url="http://127.0.0.1:8080",
        ...                          region_name="us-east-1", anonymous=True)                    # doctest: +SKIP
        """
        transport = _sagemaker_transport(endpoint_name, target_model, schemas, timeout, aws)
        return cls(transport, retries=retries, sleep=sleep)

    def _call(self, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return operation()
            except Exception as exc:  # noqa: BLE001 - classified by _backoff_or_raise
                delay = self._backoff_or_raise(exc, attempt)
            self._sleep(delay)
            attempt += 1

    def model_config(self, model: str) -> ModelConfig:
        """The schema of ``model`` (asked once, then cached): batch limit, input and output names, types, dims.

        Raises
        ------
        ModelNotFound
            The server has no such model (or, for SageMaker, no schema is known for it).
        """
        if model not in self._configs:
            self._configs[model] = self._call(partial(self._transport.model_config, model))
        return self._configs[model]

    def infer(self, model: str, inputs: Mapping[str, ArrayLike], *,
              outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs`` (batch first); return its outputs (all, or those named in ``outputs``).

        The request is checked against the model's schema first; a batch larger than
        the model's ``max_batch_size`` is sent in consecutive chunks and the outputs
        joined in order. BYTES outputs are object arrays of ``bytes``.

        Raises
        ------
        InvalidInput
            A missing or unknown input, wrong dtype or shape (checked here, naming the
            tensor), or a value the model rejected (the server's message).
        ModelNotFound, AccessDenied, Unavailable, Timeout
            See :mod:`tritonmm.client`; ``Unavailable`` only after the retries.

        Examples
        --------
        >>> outputs = client.infer("fraud_xgboost", {"input__0": np.zeros((3, 21), np.float32)})   # doctest: +SKIP
        >>> outputs["output__0"].shape                                                             # doctest: +SKIP
        (3, 2)
        """
        config = self.model_config(model)
        parts = [self._call(partial(self._transport.infer, model, chunk, outputs))
                 for chunk in self._chunks(model, config, inputs, outputs)]
        return join(parts)

    def score_transactions(self, data: Transactions, *, model: str = FRAUD_MODEL) -> Any:
        """Fraud probability and label for each raw TabFormer transaction.

        Parameters
        ----------
        data : pandas.DataFrame or sequence of dict
            The 14 raw columns (``User``, ``Card``, ``Year``, ``Month``, ``Day``, ``Time``,
            ``Amount``, ``Use Chip``, ``Merchant Name``, ``Merchant City``, ``Merchant State``,
            ``Zip``, ``MCC``, ``Errors?``); other columns are ignored, missing text is ``""``.
        model : str
            The pipeline's name on the server.

        Returns
        -------
        pandas.DataFrame or list of dict
            ``probability`` (float) and ``label`` (``"FRAUD"`` / ``"NOT FRAUD"``), on ``data``'s
            index; a list of dicts if pandas is not installed.

        Examples
        --------
        >>> client.score_transactions(frame).head(2)          # doctest: +SKIP
           probability      label
        0     0.000747  NOT FRAUD
        1     0.565720      FRAUD
        """
        inputs = transactions_to_inputs(data)
        outputs = self.infer(model, inputs, outputs=SCORE_OUTPUTS) if len(data) else NO_SCORES
        return scores_table(outputs, data)

    def score_histories(self, data: Transactions, *, model: str = PERFORMER_MODEL, max_history: int | None = None) -> Any:
        """Fraud probability of each card's latest transaction, given the card's history.

        ``data`` holds the same 14 raw columns as for :meth:`score_transactions`, for
        any number of cards in any order; each card's transactions are sent oldest
        first, one request per card, to ``model`` (``performer_fraud`` or ``hybrid_fraud``).

        Parameters
        ----------
        max_history : int, optional
            Send only each card's most recent ``max_history`` transactions.

        Returns
        -------
        pandas.DataFrame or list of dict
            One row per card, in order of first appearance: ``User``, ``Card``,
            ``transactions`` (how many were sent), ``probability``, ``label``.

        Examples
        --------
        >>> client.score_histories(frame, model="hybrid_fraud").head(2)       # doctest: +SKIP
           User  Card  transactions  probability      label
        0     0     0           812     0.000213  NOT FRAUD
        1     0     1           405     0.981220      FRAUD
        """
        histories = card_histories(data, max_history=max_history)
        outputs = [self.infer(model, history, outputs=SCORE_OUTPUTS) for history in histories.values()]
        return card_scores_table(histories, outputs)

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asyncio twin of :class:`Client`: the same constructors and calls, as coroutines.

    Create it inside the running event loop (its HTTP and gRPC connections belong to
    that loop). Chunks of a large batch are sent concurrently, ``max_concurrency``
    at a time, and joined in order; SageMaker calls run boto3 in worker threads.

    Examples
    --------
    >>> async def main(frame):                                            # doctest: +SKIP
    ...     async with AsyncClient.grpc("127.0.0.1:8001") as client:
    ...         return await client.score_transactions(frame)
    """

    def __init__(self, transport: AsyncTransport, *, retries: int = DEFAULT_RETRIES,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        super().__init__(retries=retries)
        self._transport = transport
        self._sleep = sleep
        self._max_concurrency = max_concurrency

    @classmethod
    def http(cls, url: str = DEFAULT_HTTP_URL, *, timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
             use_shared_memory: bool = False, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncClient:
        """See :meth:`Client.http`; ``timeout`` bounds each whole request."""
        transport = AsyncHttpTransport(url, timeout=timeout, use_shared_memory=use_shared_memory)
        return cls(transport, retries=retries, sleep=sleep, max_concurrency=max_concurrency)

    @classmethod
    def grpc(cls, url: str = DEFAULT_GRPC_URL, *, timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
             use_shared_memory: bool = False, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncClient:
        """See :meth:`Client.grpc`."""
        transport = AsyncGrpcTransport(url, timeout=timeout, use_shared_memory=use_shared_memory)
        return cls(transport, retries=retries, sleep=sleep, max_concurrency=max_concurrency)

    @classmethod
    def sagemaker(cls, endpoint_name: str, target_model: str, *, schemas: Mapping[str, ModelConfig] | None = None,
                  timeout: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                  max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, **aws: Unpack[AwsOptions]) -> AsyncClient:
        """See :meth:`Client.sagemaker`."""
        transport = _sagemaker.AsyncSageMakerTransport(
            _sagemaker_transport(endpoint_name, target_model, schemas, timeout, aws))
        return cls(transport, retries=retries, sleep=sleep, max_concurrency=max_concurrency)

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await operation()
            except Exception as exc:  # noqa: BLE001 - classified by _backoff_or_raise
                delay = self._backoff_or_raise(exc, attempt)
            await self._sleep(delay)
            attempt += 1

    async def model_config(self, model: str) -> ModelConfig:
        """See :meth:`Client.model_config`."""
        if model not in self._configs:
            self._configs[model] = await self._call(partial(self._transport.model_config, model))
        return self._configs[model]

    async def infer(self, model: str, inputs: Mapping[str, ArrayLike], *,
                    outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """See :meth:`Client.infer`; chunks go out concurrently and come back in order."""
        config = await self.model_config(model)
        limit = asyncio.Semaphore(self._max_concurrency)

        async def send(chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            async with limit:
                return await self._call(partial(self._transport.infer, model, chunk, outputs))

        tasks = [asyncio.ensure_future(send(chunk)) for chunk in self._chunks(model, config, inputs, outputs)]
        try:
            return join(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:  # one chunk failed: the others' answers are of no use
                task.cancel()
            raise

    async def score_transactions(self, data: Transactions, *, model: str = FRAUD_MODEL) -> Any:
        """See :meth:`Client.score_transactions`."""
        inputs = transactions_to_inputs(data)
        outputs = await self.infer(model, inputs, outputs=SCORE_OUTPUTS) if len(data) else NO_SCORES
        return scores_table(outputs, data)

    async def score_histories(self, data: Transactions, *, model: str = PERFORMER_MODEL,
                              max_history: int | None = None) -> Any:
        """See :meth:`Client.score_histories`; ``max_concurrency`` cards are in flight at once."""
        histories = card_histories(data, max_history=max_history)
        limit = asyncio.Semaphore(self._max_concurrency)

        async def score(history: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            async with limit:
                return await self.infer(model, history, outputs=SCORE_OUTPUTS)

        return card_scores_table(histories, await asyncio.gather(*(score(h) for h in histories.values())))

    async def close(self) -> None:
        """Close the connections."""
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
