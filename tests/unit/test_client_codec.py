"""The one dtype table: numpy <-> KServe datatypes, and Triton's config spelling."""

from __future__ import annotations

import numpy as np
import pytest

from tritonmm.client._codec import datatype_from_config, datatype_of, fixed_itemsize, numpy_dtype, to_wire

TABLE = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}


@pytest.mark.parametrize("datatype", sorted(TABLE))
def test_round_trip(datatype: str) -> None:
    dtype = numpy_dtype(datatype)
    assert dtype == np.dtype(TABLE[datatype])
    assert datatype_of(np.zeros(3, dtype)) == datatype


@pytest.mark.parametrize("array", [np.array(["a", "é"]), np.array([b"a", b"bc"]), np.array([b"x"], dtype=object)])
def test_text_arrays_are_bytes(array: np.ndarray) -> None:
    assert datatype_of(array) == "BYTES"
    assert to_wire(array).dtype == np.object_


def test_fixed_itemsize() -> None:
    assert [fixed_itemsize(t) for t in ("BOOL", "FP16", "FP32", "INT64")] == [1, 2, 4, 8]
    assert fixed_itemsize("BYTES") is None and fixed_itemsize("BF16") is None


def test_types_without_a_kserve_datatype() -> None:
    assert datatype_of(np.zeros(2, np.complex64)) is None
    assert datatype_of(np.array(["2024-01-01"], dtype="datetime64[D]")) is None
    with pytest.raises(KeyError):
        numpy_dtype("BF16")


def test_fixed_size_arrays_go_on_the_wire_unchanged() -> None:
    array = np.arange(4, dtype=np.int32)
    assert to_wire(array) is array


@pytest.mark.parametrize(("config_type", "datatype"), [("TYPE_FP32", "FP32"), ("TYPE_STRING", "BYTES"),
                                                        ("TYPE_INT64", "INT64"), ("TYPE_BOOL", "BOOL")])
def test_config_types(config_type: str, datatype: str) -> None:
    assert datatype_from_config(config_type) == datatype
