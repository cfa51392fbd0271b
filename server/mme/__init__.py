"""SageMaker-compatible multi-model endpoint in front of the embedded Triton."""
