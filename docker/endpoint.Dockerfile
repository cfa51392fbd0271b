# syntax=docker/dockerfile:1
# Target `endpoint`: the SageMaker-compatible multi-model endpoint (`tritonmm serve --store`)
# with its embedded Triton, over the archives of `make archives`.
# Target `loadtest`: the same install plus locust, for the compose `loadtest` profile.

# Build the project's wheel apart, so no source tree or build tool lands in the runtime image.
FROM python:3.11.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tritonmm/ tritonmm/
COPY server/ server/
COPY export/ export/
COPY client/ client/
COPY loadtest/ loadtest/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm AS endpoint
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# tritonserver 2.51.0 and its Python backend come from this wheel; its own Python
# dependencies are not used (as in the Makefile), hence --no-deps.
RUN pip install --no-cache-dir --no-deps nvidia-pytriton==0.7.0
# Only [project.dependencies]: the export and dev extras (torch, xgboost, pytest…) stay out.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl

# The store and cache folders are owned by the runtime user so that the named volumes
# mounted on them start out writable by it; the empty repository keeps Triton to archives.
RUN groupadd --system --gid 10001 tritonmm \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/tritonmm tritonmm \
    && mkdir -p /srv/model_store /var/cache/tritonmm /opt/tritonmm/empty_repository \
    && chown tritonmm:tritonmm /srv/model_store /var/cache/tritonmm
# Reference archives, copied into the model_store volume by compose's model-store-seed service.
COPY build/model_store/ /opt/tritonmm/archives/

# Numeric, so that runtimes checking runAsNonRoot need not resolve the name.
USER 10001:10001
WORKDIR /home/tritonmm
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=4)"]
# 0.0.0.0 is the container's own interface: compose publishes the port on the host's loopback
# only. Off loopback the CLI demands --auth (the file is mounted by compose). The embedded
# Triton stays on the container's loopback (--host default): only the endpoint, with its
# tenant checks, is reachable from other containers.
CMD ["tritonmm", "serve", "--endpoint-host", "0.0.0.0", "--endpoint-port", "8080", \
     "--store", "/srv/model_store", "--cache-dir", "/var/cache/tritonmm", \
     "--auth", "/etc/tritonmm/auth.json", \
     "--model-repository", "/opt/tritonmm/empty_repository", \
     "--backend-directory", "/home/tritonmm/backends"]

FROM endpoint AS loadtest
USER 0:0
# Versions as pinned in pyproject.toml (pandas: export extra; locust: dev extra).
RUN pip install --no-cache-dir pandas==2.2.3 locust==2.18.4
USER 10001:10001
# The locustfile as installed with the package (it imports tritonmm.loadtest.users).
ENV LOCUST_LOCUSTFILE=/usr/local/lib/python3.11/site-packages/tritonmm/loadtest/locustfile.py
EXPOSE 8089 5557
# The endpoint's check does not apply; compose checks master and worker each in its own way.
HEALTHCHECK NONE
# Web UI on 8089; pick users (Triton HTTP/gRPC, endpoint) and the shape in the UI.
CMD ["locust", "--master", "--class-picker"]
