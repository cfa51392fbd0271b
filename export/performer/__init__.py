"""Performer (FAVOR+ linear attention): model, training and ONNX export."""
