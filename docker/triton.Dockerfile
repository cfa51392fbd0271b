# syntax=docker/dockerfile:1
# NVIDIA's Triton serving the exported model repository (`make export`) with its native
# backends. 24.10 is Triton 2.51.0, the release of the embedded server (nvidia-pytriton 0.7.0).
FROM nvcr.io/nvidia/tritonserver:24.10-py3

# Nothing to install: `backend: "fil"` / `"onnxruntime"` configs select the image's own C++
# backends, and the Python models need only numpy, which the image's Python 3.10 has.
# Owned by root and read-only for the server user: Triton only reads the repository.
COPY model_repository/ /models/

# triton-server: the base image creates it, uid and gid 1000, to run Triton without root.
USER 1000:1000

EXPOSE 8000 8001 8002
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8000/v2/health/ready"]

# explicit + --load-model=*: every model is loaded at start and the repository API can still
# load/unload. summary_latencies adds per-model latency quantiles (nv_*_summary_us) for Grafana.
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", "--load-model=*", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", \
     "--metrics-config=summary_latencies=true"]
