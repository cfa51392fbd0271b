"""Build KServe v2 requests for the served models with tritonclient (HTTP or gRPC)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tritonmm.export.fraud import raw_columns
from tritonmm.server.models.fraud_preprocess.features import RAW_COLUMNS


def infer_input(module: ModuleType, name: str, array: np.ndarray, datatype: str | None = None):
    """An ``InferInput`` carrying ``array`` (binary tensor encoding over HTTP)."""
    datatype = datatype or ("BYTES" if array.dtype == object else "FP32")
    tensor = module.InferInput(name, list(array.shape), datatype)
    if module is httpclient:
        tensor.set_data_from_numpy(array, binary_data=True)
    else:
        tensor.set_data_from_numpy(array)
    return tensor


def fraud_inputs(module: ModuleType, frame: pd.DataFrame) -> list:
    """The ensemble's 14 raw columns, each ``[n, 1]``; text as UTF-8 bytes."""
    columns = raw_columns(frame)
    inputs = []
    for name in RAW_COLUMNS:
        values = columns[name]
        if values.dtype == object:
            values = np.array([str(v).encode("utf-8") for v in values], dtype=object)
        inputs.append(infer_input(module, name, values.reshape(-1, 1)))
    return inputs


def client_for(module: ModuleType, settings):
    return module.InferenceServerClient(settings.http_url.removeprefix("http://") if module is httpclient else settings.grpc_url)


PROTOCOLS = {"http": httpclient, "grpc": grpcclient}
