"""Python-based ONNX Runtime backend (``backend: "onnxruntime"`` / ``platform: "onnxruntime_onnx"``)."""
