"""tritonmm client SDK: call models on Triton (HTTP, gRPC) or behind a SageMaker endpoint, with typed errors.

One :class:`Client` (or :class:`AsyncClient`) per server, three ways to reach it::

    from tritonmm.client import Client

    triton = Client.http("127.0.0.1:8000")            # Triton's HTTP endpoint (binary tensors)
    triton = Client.grpc("127.0.0.1:8001")            # Triton's gRPC endpoint
    mme = Client.sagemaker("local", "fraud_1.tar.gz",  # a SageMaker multi-model endpoint
                           endpoint_url="http://127.0.0.1:8080", region_name="us-east-1", anonymous=True)

    scores = triton.score_transactions(frame)         # DataFrame: probability, label
    cards = triton.score_histories(frame)             # per card: its latest transaction, by the Performer
    outputs = triton.infer("fraud_xgboost", {"input__0": features})   # dict of numpy arrays

Every call checks the request against the model's schema first (an
:class:`InvalidInput` names the tensor or column), splits batches larger than
the model's ``max_batch_size`` and joins the answers in order, and retries
429/503 answers and failed connections with exponential backoff and full
jitter (``retries=3``; never 4xx, never a timeout).

Errors::

    ClientError                 .message (the server's), .status (HTTP status), .code (transport's code)
     ├── ModelNotFound          no such model / TargetModel / schema
     ├── AccessDenied           credentials missing, wrong, or not allowed this model
     ├── InvalidInput           names, types, shapes or values the model rejects (4xx)
     ├── Unavailable            429/503 or no connection, after the retries
     └── Timeout                no answer within ``timeout``

Extras: ``tritonmm-client[sagemaker]`` (boto3), ``tritonmm-client[pandas]``
(DataFrames in and out of :meth:`Client.score_transactions`).
"""

from ._client import AsyncClient, Client
from ._errors import AccessDenied, ClientError, InvalidInput, ModelNotFound, Timeout, Unavailable
from ._pipelines import FRAUD_SCHEMA, HISTORY_SCHEMA
from ._transports import AsyncTransport, Transport
from ._transports.sagemaker import AwsOptions
from ._types import ModelConfig, TensorConfig

__all__ = [
    "FRAUD_SCHEMA",
    "HISTORY_SCHEMA",
    "AccessDenied",
    "AsyncClient",
    "AsyncTransport",
    "AwsOptions",
    "Client",
    "ClientError",
    "InvalidInput",
    "ModelConfig",
    "ModelNotFound",
    "TensorConfig",
    "Timeout",
    "Transport",
    "Unavailable",
]
