"""numpy dtypes <-> KServe v2 datatypes, and Triton config types -> KServe datatypes: the one table.

Triton's model configuration spells types ``TYPE_FP32`` / ``TYPE_STRING``; the
inference protocol spells them ``FP32`` / ``BYTES``. Everything in the client
speaks the protocol's names; this module is where the other spellings are read.

Examples
--------
>>> import numpy as np
>>> datatype_of(np.zeros(2, np.float32)), numpy_dtype("INT64")
('FP32', dtype('int64'))
>>> datatype_of(np.array(["a", "b"])), datatype_from_config("TYPE_STRING")
('BYTES', 'BYTES')
"""

from __future__ import annotations

import numpy as np

BYTES = "BYTES"

_DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    BYTES: np.dtype(np.object_),
}
_DTYPES: dict[np.dtype, str] = {dtype: name for name, dtype in _DATATYPES.items()}
# Variable-length strings: numpy's fixed-width str/bytes arrays are sent as BYTES too.
_TEXT_KINDS = frozenset("OUS")


def datatype_of(array: np.ndarray) -> str | None:
    """The KServe datatype ``array`` is sent as, or ``None`` if the protocol has none (complex, datetime...)."""
    if array.dtype.kind in _TEXT_KINDS:
        return BYTES
    return _DTYPES.get(array.dtype)


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype a KServe ``datatype`` is received as (``BYTES`` -> object arrays of ``bytes``).

    Raises ``KeyError`` for a datatype numpy cannot hold (``BF16``).
    """
    return _DATATYPES[datatype]


def fixed_itemsize(datatype: str) -> int | None:
    """Bytes per element of a fixed-size datatype; ``None`` for BYTES and types numpy cannot hold (``BF16``)."""
    dtype = _DATATYPES.get(datatype)
    return None if dtype is None or datatype == BYTES else dtype.itemsize


def datatype_from_config(config_type: str) -> str:
    """``TYPE_FP32`` -> ``FP32``; ``TYPE_STRING`` -> ``BYTES`` (Triton's config spelling to the protocol's)."""
    name = config_type.removeprefix("TYPE_")
    return BYTES if name == "STRING" else name


def to_wire(array: np.ndarray) -> np.ndarray:
    """``array`` as tritonclient serialises it: fixed-width str/bytes arrays become object arrays."""
    return array.astype(np.object_) if array.dtype.kind in "US" else array
