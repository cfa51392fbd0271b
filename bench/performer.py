"""``make bench-performer``: latency and peak memory of FAVOR+ vs exact attention against sequence length.

Three encoders, the project's :class:`~tritonmm.export.performer.model.PerformerClassifier` (tokens ``[1, L, 24]``
+ mask -> one probability per sequence; 2 layers, d_model 64, 4 heads, FFN 256) with identical seeded random
weights, differing only in the attention sub-layer:

* ``performer``: FAVOR+ (``attention="favor"``, ``--n-features`` random features, default 64);
* ``softmax``: exact attention, same module and parameters (``attention="softmax"``);
* ``none``: the attention sub-layer replaced by identity: the "no attention" floor that every encoder pays
  (input encoding, embedding, layer norms, feed-forward blocks, read-out).

64 features: with d_head = 16 that is 4 x d_head (the paper's m = 256 for d_head = 64 is the same ratio, and above
its d log d ~ 44). The feature map's element-wise work on ``[H, L, m]`` tensors is what the performer adds over the
floor, linear in m: at L = 8192 in onnxruntime, 64 / 128 / 256 features measured ~2.2-3.0x / 3.3-5.0x / 4.6-9.4x the
floor (2 and 1 threads). The contraction order is already the linear one, phi(Q) (phi(K)^T [V 1]); chunk sizes only
apply to causal attention, which this bidirectional encoder does not use.

Measured in one run, batch 1:

* in-process latency: PyTorch eager (``inference_mode``, 2 threads) and onnxruntime (the project's ONNX export,
  opset 17, dynamic batch and length; ``intra_op_num_threads=2``), the three encoders interleaved round by round,
  the median of the repeats kept (the minimum is recorded too);
* peak memory: each (runtime, encoder, length) in a fresh subprocess: the peak resident set (VmHWM, reset after
  imports and model build) of two calls (one when a call takes over 2 s) above the resident set at that point;
* served: if the Python-based onnxruntime backend exists (``server/backends/onnxruntime/model.py``), the three
  ONNX encoders in a temporary model repository behind the embedded Triton, p50 over gRPC, against in-process
  onnxruntime at the same lengths in ABBA blocks.

Exact attention's L x L matrices grow quadratically: a cell is not run (recorded with the reason) when the
projected matrix memory exceeds ``--softmax-memory-cap-gb`` (or 70% of the memory available now), the length
``--softmax-max-length``, or the projected call time ``--cell-time-limit``. ``--time-budget`` caps the whole run.
Writes ``bench/results/performer.json`` and ``bench/results/performer.png``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from tritonmm.export.performer.attention import load_attention_weights
from tritonmm.export.performer.model import PerformerClassifier
from tritonmm.export.performer.onnx_export import OUTPUT, export_onnx
from tritonmm.server.models.performer_featurize.history import TIME_COLUMN

RESULTS = Path("bench/results")
WORK = Path("build/bench/performer")
LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384)
QUICK_LENGTHS = (256, 512, 1024, 2048)
ENCODERS = ("performer", "softmax", "none")
RUNTIMES = ("torch", "onnxruntime")
THREADS = 2
# Peak memory of exact attention in H x L x L float32 matrices, as measured here (L = 2048, 4096): eager PyTorch
# holds about two at once (scores, softmax); onnxruntime's arena about six (node outputs, power-of-two growth).
SOFTMAX_LIVE_MATRICES = {"torch": 2.5, "onnxruntime": 6.5}
console = Console(width=120)

# --------------------------------------------------------------------------------------------- encoders


@dataclass(frozen=True)
class EncoderSpec:
    """One shape for all three encoders (``PerformerClassifier`` arguments); only the attention sub-layer differs."""

    token_features: int = 24
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    n_features: int = 64
    seed: int = 0


class IdentityAttention(nn.Module):
    """The "no attention" floor: the attention sub-layer returns its input (``x + LN(x)`` in the residual stream)."""

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        return x


def build_encoders(spec: EncoderSpec, kinds: Sequence[str] = ENCODERS) -> dict[str, PerformerClassifier]:
    """``PerformerClassifier`` encoders of ``kinds`` in eval mode, all with the performer's seeded random weights."""
    def classifier(attention: str) -> PerformerClassifier:
        return PerformerClassifier(
            spec.token_features, d_model=spec.d_model, n_layers=spec.n_layers, n_heads=spec.n_heads,
            n_features=spec.n_features, attention=attention, dropout=0.0,
        )

    torch.manual_seed(spec.seed)
    performer = classifier("favor").eval()
    state = performer.state_dict()
    encoders: dict[str, PerformerClassifier] = {}
    for kind in kinds:
        if kind == "performer":
            encoders[kind] = performer
        elif kind == "softmax":
            encoders[kind] = classifier("softmax").eval()
            load_attention_weights(encoders[kind], state)  # leaves out only the FAVOR+ buffers
        else:
            floor = classifier("softmax").eval()
            load_attention_weights(floor, state)
            for block in floor.blocks:
                block.attention = IdentityAttention()
            encoders[kind] = floor
    return encoders


def sequence(length: int, spec: EncoderSpec, seed: int = 1) -> dict[str, np.ndarray]:
    """One history of ``length`` tokens (batch 1, no padding): normal features, growing elapsed minutes."""
    rng = np.random.default_rng(seed + length)
    tokens = rng.standard_normal((1, length, spec.token_features), dtype=np.float32)
    tokens[..., TIME_COLUMN] = np.cumsum(rng.uniform(0, 600, (1, length)), axis=1, dtype=np.float32)
    return {"tokens": tokens, "mask": np.ones((1, length), dtype=bool)}


def export_encoder(encoder: PerformerClassifier, path: Path) -> Path:
    """ONNX opset 17, dynamic batch and sequence axes, TorchScript exporter: the project's own Performer export."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's tracer and deprecation warnings
        return export_onnx(encoder, path, opset=17)


def ort_session(path: Path, threads: int = THREADS):
    """An in-process session as the bench measures it: ``threads`` intra-op threads, sequential execution."""
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runners(encoders: dict[str, PerformerClassifier], onnx_files: dict[str, Path]) -> dict[str, dict]:
    """``runner[runtime][encoder](feeds)``: one forward pass on numpy feeds (call torch's inside ``inference_mode``)."""
    def torch_call(model: PerformerClassifier):
        return lambda feeds: model(**{name: torch.from_numpy(value) for name, value in feeds.items()})

    def ort_call(session):
        return lambda feeds: session.run([OUTPUT], feeds)

    return {
        "torch": {kind: torch_call(model) for kind, model in encoders.items()},
        "onnxruntime": {kind: ort_call(ort_session(onnx_files[kind])) for kind in encoders},
    }


# --------------------------------------------------------------------------------------------- guards


@dataclass(frozen=True)
class Limits:
    """When a cell is not run (all encoders are guarded by time; exact attention also by length and memory)."""

    softmax_max_length: int = 16384
    softmax_memory_cap_gb: float = 10.0
    cell_time_limit_s: float = 20.0


def softmax_matrices_gb(runtime: str, length: int, spec: EncoderSpec) -> float:
    """Projected peak memory of exact attention's H x L x L float32 matrices (batch 1)."""
    return SOFTMAX_LIVE_MATRICES[runtime] * spec.n_heads * length * length * 4 / 1e9


def available_gb() -> float:
    """``MemAvailable`` now (other processes share this machine)."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    return float("inf")


def skip_reason(runtime: str, encoder: str, length: int, spec: EncoderSpec, limits: Limits,
                previous: Optional[dict]) -> Optional[str]:
    """``"not run: <reason>"`` for a cell projected too big or too slow from the encoder's previous cell, else None."""
    if encoder == "softmax":
        if length > limits.softmax_max_length:
            return f"not run: L > --softmax-max-length {limits.softmax_max_length}"
        projected_gb = softmax_matrices_gb(runtime, length, spec)
        if projected_gb > limits.softmax_memory_cap_gb:
            return (f"not run: projected {projected_gb:.1f} GB of L x L attention matrices "
                    f"> --softmax-memory-cap-gb {limits.softmax_memory_cap_gb:g}")
        if projected_gb > 0.7 * available_gb():
            return f"not run: projected {projected_gb:.1f} GB of L x L attention matrices > 70% of the {available_gb():.1f} GB available"
    if previous is None:
        return None
    if previous["status"] != "ok":
        return f"not run: not run at L={previous['length']} either"
    exponent = 2 if encoder == "softmax" else 1
    projected_s = previous["median_ms"] / 1e3 * (length / previous["length"]) ** exponent
    if projected_s > limits.cell_time_limit_s:
        return (f"not run: projected {projected_s:.0f} s per call (L^{exponent} from L={previous['length']}) "
                f"> --cell-time-limit {limits.cell_time_limit_s:g} s")
    return None


class Deadline:
    """The run's time budget: phases ask for their share of what is left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.began = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def left(self) -> float:
        return max(0.0, self.seconds - self.elapsed())


def _timed(call, feeds) -> float:
    began = time.perf_counter()
    call(feeds)
    return time.perf_counter() - began


# --------------------------------------------------------------------------------------------- latency


def measure_latency(
    run: dict[str, dict], lengths: Sequence[int], spec: EncoderSpec, limits: Limits, *,
    max_repeats: int, min_repeats: int, cell_budget_s: float, phase_budget_s: float,
) -> list[dict]:
    """Median latency per (runtime, encoder, length); the encoders of a (runtime, length) interleaved round by round.

    Repeats per cell: as many as fit ``cell_budget_s`` after one timed warm-up call (at least ``min_repeats``,
    at most ``max_repeats``), and fewer once the phase's budget runs short.
    """
    cells: list[dict] = []
    previous: dict[tuple[str, str], dict] = {}
    phase = Deadline(phase_budget_s)
    n_cells = len(lengths) * len(RUNTIMES)
    with torch.inference_mode():
        for index, (length, runtime) in enumerate((L, r) for L in lengths for r in RUNTIMES):
            feeds = sequence(length, spec)
            budget = min(cell_budget_s, phase.left() / max(1, n_cells - index) / len(ENCODERS))
            calls, first = {}, {}
            for encoder in ENCODERS:
                reason = skip_reason(runtime, encoder, length, spec, limits, previous.get((runtime, encoder)))
                if reason:
                    cell = {"runtime": runtime, "encoder": encoder, "length": length, "status": reason}
                    cells.append(cell)
                    previous[(runtime, encoder)] = cell
                    console.print(f"  {runtime:11s} {encoder:9s} L={length:5d}: {reason}")
                    continue
                calls[encoder] = run[runtime][encoder]
                first[encoder] = _timed(calls[encoder], feeds)  # warm-up (and a first estimate)
            wanted = {
                encoder: 0 if first[encoder] > limits.cell_time_limit_s
                else max(min_repeats, min(max_repeats, int(budget / max(first[encoder], 1e-4))))
                for encoder in calls
            }
            samples: dict[str, list[float]] = {encoder: [] for encoder in calls}
            order = list(calls)
            for round_ in range(max(wanted.values(), default=0)):
                for encoder in order[round_ % len(order):] + order[: round_ % len(order)]:
                    if len(samples[encoder]) < wanted[encoder]:
                        samples[encoder].append(_timed(calls[encoder], feeds))
            for encoder in calls:
                times = samples[encoder] or [first[encoder]]  # one call over the time limit: that call is the sample
                ms = np.asarray(times) * 1e3
                cell = {
                    "runtime": runtime, "encoder": encoder, "length": length, "status": "ok",
                    "median_ms": float(np.median(ms)), "min_ms": float(ms.min()), "max_ms": float(ms.max()),
                    "warmup_ms": first[encoder] * 1e3, "repeats": len(times),
                }
                cells.append(cell)
                previous[(runtime, encoder)] = cell
                console.print(f"  {runtime:11s} {encoder:9s} L={length:5d}: median {cell['median_ms']:9.1f} ms  "
                              f"min {cell['min_ms']:9.1f} ms  ({len(times)} calls)")
    return cells


# --------------------------------------------------------------------------------------------- memory


def _status_kb(field: str) -> Optional[int]:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory_child(arguments: str) -> None:
    """Subprocess body: build one encoder (or its session), then print the peak RSS of ``calls`` forward passes.

    The peak is the kernel's high-water mark of this process's resident set, reset after imports and model build:
    VmHWM, which is what ``ru_maxrss`` reports minus one inherited term: a child's ``ru_maxrss`` never drops below
    the parent's resident set at ``fork`` (exec keeps the old image's peak), so here it would read the bench's own
    size. Without ``clear_refs`` the growth of ``ru_maxrss`` over the baseline is reported (a lower bound).
    """
    args = json.loads(arguments)
    torch.set_num_threads(THREADS)
    spec, runtime, encoder = EncoderSpec(**args["spec"]), args["runtime"], args["encoder"]
    feeds = sequence(args["length"], spec)
    if runtime == "torch":
        model = build_encoders(spec, (encoder,))[encoder]
        torch_feeds = {name: torch.from_numpy(value) for name, value in feeds.items()}

        def call() -> None:
            with torch.inference_mode():
                model(**torch_feeds)
    else:
        session = ort_session(Path(args["onnx"]))

        def call() -> None:
            session.run([OUTPUT], feeds)

    baseline_kb = _status_kb("VmRSS") or 0
    reset = _reset_peak_rss() and _status_kb("VmHWM") is not None
    maxrss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    for _ in range(args["calls"]):
        call()
    seconds = time.perf_counter() - began
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kb = _status_kb("VmHWM") if reset else maxrss_kb
    print(json.dumps({
        "baseline_mb": baseline_kb / 1024, "peak_mb": peak_kb / 1024, "ru_maxrss_mb": maxrss_kb / 1024,
        "peak_above_baseline_mb": (peak_kb - baseline_kb if reset else max(0, maxrss_kb - maxrss_before_kb)) / 1024,
        "method": "VmHWM reset by clear_refs after build" if reset else "ru_maxrss growth (lower bound)",
        "calls": args["calls"], "seconds": seconds,
    }))


def measure_memory(latency: list[dict], lengths: Sequence[int], spec: EncoderSpec, onnx_files: dict[str, Path],
                   deadline: Deadline) -> list[dict]:
    """Peak memory per (runtime, encoder, length), each in a fresh subprocess; cells not run for latency are skipped."""
    cells = []
    by_key = {(c["runtime"], c["encoder"], c["length"]): c for c in latency}
    for length in lengths:
        for runtime in RUNTIMES:
            for encoder in ENCODERS:
                timing = by_key[(runtime, encoder, length)]
                cell = {"runtime": runtime, "encoder": encoder, "length": length}
                if timing["status"] != "ok":
                    cells.append({**cell, "status": timing["status"]})
                    continue
                seconds = timing["median_ms"] / 1e3
                if deadline.left() < 5 + 2 * seconds:
                    cells.append({**cell, "status": "not run: out of the run's --time-budget"})
                    continue
                args = {"spec": asdict(spec), "runtime": runtime, "encoder": encoder, "length": length,
                        "onnx": str(onnx_files[encoder].resolve()), "calls": 2 if seconds < 2 else 1}
                try:
                    done = subprocess.run(
                        [sys.executable, "-c", "import sys; from bench.performer import memory_child; memory_child(sys.argv[1])",
                         json.dumps(args)],
                        capture_output=True, text=True, timeout=120 + 20 * seconds, cwd=Path(__file__).resolve().parents[1],
                    )
                except subprocess.TimeoutExpired:
                    cells.append({**cell, "status": f"failed: no answer in {120 + 20 * seconds:.0f} s"})
                    continue
                if done.returncode != 0:
                    why = "killed (out of memory?)" if done.returncode < 0 else "".join(done.stderr.strip().splitlines()[-1:])
                    cells.append({**cell, "status": f"failed: exit {done.returncode}: {why}"})
                    console.print(f"  {runtime:11s} {encoder:9s} L={length:5d}: {cells[-1]['status']}")
                    continue
                cells.append({**cell, "status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])})
                console.print(f"  {runtime:11s} {encoder:9s} L={length:5d}: peak +{cells[-1]['peak_above_baseline_mb']:8.1f} MB")
    return cells


# --------------------------------------------------------------------------------------------- served


def write_served_model(onnx_file: Path, repository: Path, name: str, spec: EncoderSpec) -> str:
    """A ``backend: "onnxruntime"`` model folder (batch 1 per request, ``THREADS`` intra-op threads); returns how."""
    parameters = {"intra_op_thread_count": str(THREADS), "inter_op_thread_count": "1"}
    if importlib.util.find_spec("tritonmm.export.onnx_model") is not None:
        from tritonmm.export.onnx_model import export_onnx_model  # noqa: PLC0415

        export_onnx_model(onnx_file, repository, name, max_batch_size=1, parameters=parameters, dynamic_batching=False)
        return "tritonmm.export.onnx_model.export_onnx_model"
    from tritonmm.export.model_config import VERSION, model_config, tensor, write_config  # noqa: PLC0415

    config = model_config(
        name=name, backend="onnxruntime", max_batch_size=1, parameters=parameters, dynamic_batching=False,
        inputs=[tensor("tokens", "TYPE_FP32", [-1, spec.token_features]), tensor("mask", "TYPE_BOOL", [-1])],
        outputs=[tensor(OUTPUT, "TYPE_FP32", [1])],
    )
    shutil.copyfile(onnx_file, write_config(config, repository) / VERSION / "model.onnx")
    return "tritonmm.export.model_config.write_config"


def measure_served(
    onnx_files: dict[str, Path], lengths: Sequence[int], spec: EncoderSpec, latency: list[dict], *,
    max_repeats: int, min_repeats: int, cell_budget_s: float, deadline: Deadline,
) -> dict:
    """p50 over gRPC through the embedded Triton vs in-process onnxruntime (same file and threads), in ABBA blocks."""
    from tritonmm.server.backend_dir import OUR_BACKENDS_DIR  # noqa: PLC0415

    backend = OUR_BACKENDS_DIR / "onnxruntime" / "model.py"
    if not backend.is_file():
        return {"status": f"not run: {backend} does not exist (the Python-based onnxruntime backend)", "cells": []}
    import tritonclient.grpc as grpcclient  # noqa: PLC0415

    from tritonmm.server.triton_process import TritonServer, TritonSettings, free_port  # noqa: PLC0415

    repository = WORK / "repository"
    shutil.rmtree(repository, ignore_errors=True)
    written_by = {encoder: write_served_model(path, repository, f"bench_{encoder}", spec) for encoder, path in onnx_files.items()}
    settings = TritonSettings(
        model_repository=repository, backend_directory=WORK / "backends", http_port=free_port(),
        grpc_port=free_port(), metrics_port=free_port(), omp_num_threads=THREADS,
    )
    ok = {(c["encoder"], c["length"]) for c in latency if c["runtime"] == "onnxruntime" and c["status"] == "ok"}
    cells: list[dict] = []
    with (WORK / "tritonserver.log").open("w") as log, TritonServer(settings, log_sink=log) as server:
        began = time.perf_counter()
        server.wait_ready(timeout=180)
        console.print(f"  Triton ready in {time.perf_counter() - began:.1f} s (log: {WORK / 'tritonserver.log'})")
        client = grpcclient.InferenceServerClient(settings.grpc_url)
        for length in lengths:
            feeds = sequence(length, spec)
            inputs = []
            for name, array in feeds.items():
                tensor = grpcclient.InferInput(name, list(array.shape), "BOOL" if array.dtype == bool else "FP32")
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            requested = [grpcclient.InferRequestedOutput(OUTPUT)]
            for encoder, path in onnx_files.items():
                cell = {"encoder": encoder, "length": length, "model": f"bench_{encoder}"}
                if (encoder, length) not in ok:
                    cells.append({**cell, "status": "not run: not run in-process either"})
                    continue
                if deadline.left() < 10:
                    cells.append({**cell, "status": "not run: out of the run's --time-budget"})
                    continue
                session = ort_session(path)
                calls = {
                    "served": lambda _, model=cell["model"]: client.infer(model, inputs, outputs=requested).as_numpy(OUTPUT),
                    "in_process": lambda _, session=session: session.run([OUTPUT], feeds)[0],
                }
                difference = float(np.abs(calls["served"](None) - calls["in_process"](None)).max())
                first = max(_timed(calls["served"], None), _timed(calls["in_process"], None))
                half = max(min_repeats, min(max_repeats, int(cell_budget_s / 2 / max(first, 1e-4)))) // 2 + 1
                # ABBA blocks rather than call by call: each side's idle threads spin for a moment after a call
                # and would slow the other side's next call.
                samples: dict[str, list[float]] = {"served": [], "in_process": []}
                for route in ("served", "in_process", "in_process", "served"):
                    samples[route] += [_timed(calls[route], None) for _ in range(half)]
                p50 = {route: float(np.median(times)) * 1e3 for route, times in samples.items()}
                cells.append({
                    **cell, "status": "ok", "served_p50_ms": p50["served"], "in_process_p50_ms": p50["in_process"],
                    "served_p99_ms": float(np.percentile(samples["served"], 99)) * 1e3,
                    "served_min_ms": min(samples["served"]) * 1e3, "in_process_min_ms": min(samples["in_process"]) * 1e3,
                    "repeats": 2 * half, "served_over_in_process": p50["served"] / p50["in_process"],
                    "max_abs_difference": difference,
                })
                console.print(f"  served {encoder:9s} L={length:5d}: p50 {p50['served']:8.1f} ms vs in-process "
                              f"{p50['in_process']:8.1f} ms  ({2 * half} calls each, |diff| {difference:.1e})")
    return {"status": "ok", "config_written_by": written_by, "protocol": "grpc", "omp_num_threads": THREADS,
            "parameters": {"intra_op_thread_count": str(THREADS), "inter_op_thread_count": "1"}, "cells": cells}


# --------------------------------------------------------------------------------------------- ratios


def ratios_and_targets(latency: list[dict], memory: list[dict], served: dict, lengths: Sequence[int]) -> tuple[dict, list[dict]]:
    """The target ratios at L = 8192 / 1024 (or, when not measured, at the longest L and one eighth of it).

    Each latency ratio is computed from medians (what the targets judge) and from minima (``*_from_min``): on a
    shared machine the two disagree when other processes took the cores during the run.
    """
    def ms(runtime: str, encoder: str, length: int, stat: str) -> Optional[float]:
        cell = next((c for c in latency if (c["runtime"], c["encoder"], c["length"]) == (runtime, encoder, length)), None)
        return cell[stat] if cell and cell["status"] == "ok" else None

    def mb(runtime: str, encoder: str, length: int) -> Optional[float]:
        cell = next((c for c in memory if (c["runtime"], c["encoder"], c["length"]) == (runtime, encoder, length)), None)
        return cell["peak_above_baseline_mb"] if cell and cell["status"] == "ok" else None

    def div(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return a / b if a is not None and b else None

    long = 8192 if 8192 in lengths else max(lengths)
    short = long // 8 if long // 8 in lengths else min(lengths)
    ratios: dict[str, Optional[float]] = {}
    targets: list[dict] = []

    def record(key: str, name: str, values: tuple[Optional[float], Optional[float]], goal: str, test) -> None:
        """``values``: (from medians, from minima); ``test`` judges the median one (None: a reference, no target)."""
        ratios[key], ratios[f"{key}_from_min"] = values
        met = None if test is None or values[0] is None else bool(test(values[0]))
        targets.append({"key": key, "ratio": name, "value": values[0], "value_from_min": values[1], "target": goal, "met": met})

    def both(function) -> tuple[Optional[float], Optional[float]]:
        return function("median_ms"), function("min_ms")

    for runtime in RUNTIMES:
        def growth(encoder: str, stat: str, runtime: str = runtime) -> Optional[float]:
            return div(ms(runtime, encoder, long, stat), ms(runtime, encoder, short, stat))

        for encoder in ("performer", "none"):
            record(f"{encoder}_growth_{long}_over_{short}_{runtime}", f"{runtime}: {encoder} growth t({long})/t({short})",
                   both(lambda stat, e=encoder: growth(e, stat)), f"(reference; x{long // short} if linear)", None)
        record(f"performer_growth_over_floor_growth_{runtime}", f"{runtime}: performer growth ÷ floor growth",
               both(lambda stat: div(growth("performer", stat), growth("none", stat))), "≤ 1.3", lambda v: v <= 1.3)
        record(f"softmax_growth_{long}_over_{short}_{runtime}", f"{runtime}: softmax growth t({long})/t({short})",
               both(lambda stat: growth("softmax", stat)), f"(reference; x{(long // short) ** 2} if quadratic)", None)
        record(f"softmax_over_performer_{long}_{runtime}", f"{runtime}: performer speed-up over softmax at {long}",
               both(lambda stat, r=runtime: div(ms(r, "softmax", long, stat), ms(r, "performer", long, stat))), "≥ 20",
               lambda v: v >= 20)
        record(f"performer_over_floor_{long}_{runtime}", f"{runtime}: performer / floor at {long}",
               both(lambda stat, r=runtime: div(ms(r, "performer", long, stat), ms(r, "none", long, stat))), "≤ 3",
               lambda v: v <= 3)
        share = div(mb(runtime, "performer", long), mb(runtime, "softmax", long))
        record(f"performer_memory_over_softmax_{long}_{runtime}", f"{runtime}: performer / softmax peak memory at {long}",
               (share, share), "≤ 0.25", lambda v: v <= 0.25)
        if 16384 in lengths:
            runs = float(ms(runtime, "performer", 16384, "median_ms") is not None)
            record(f"performer_runs_16384_{runtime}", f"{runtime}: performer runs at 16384 (1 = yes)", (runs, runs),
                   "runs", lambda v: v == 1)
    record(f"performer_onnxruntime_over_torch_{long}", f"performer: onnxruntime / torch eager at {long}",
           both(lambda stat: div(ms("onnxruntime", "performer", long, stat), ms("torch", "performer", long, stat))),
           "≤ 1", lambda v: v <= 1)
    for cell in served.get("cells", []):
        if cell["status"] != "ok":
            continue
        values = (cell["served_over_in_process"], div(cell["served_min_ms"], cell["in_process_min_ms"]))
        name = f"{cell['encoder']}: served p50 / in-process onnxruntime at {cell['length']}"
        if (cell["encoder"], cell["length"]) == ("performer", 1024):
            record("served_over_in_process_performer_1024", name, values, "≤ 1.3", lambda v: v <= 1.3)
        else:
            ratios[f"served_over_in_process_{cell['encoder']}_{cell['length']}"] = values[0]
            ratios[f"served_over_in_process_{cell['encoder']}_{cell['length']}_from_min"] = values[1]
    if "served_over_in_process_performer_1024" not in ratios:
        record("served_over_in_process_performer_1024", "performer: served p50 / in-process onnxruntime at 1024",
               (None, None), "≤ 1.3", None)
    return ratios, targets


# --------------------------------------------------------------------------------------------- report


STYLE = {"torch": ("-", "o"), "onnxruntime": ("--", "s")}
COLOUR = {"performer": "tab:blue", "softmax": "tab:red", "none": "tab:gray"}


def plot(latency: list[dict], memory: list[dict], served: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax, cells, key in ((time_ax, latency, "median_ms"), (memory_ax, memory, "peak_above_baseline_mb")):
        for runtime in RUNTIMES:
            for encoder in ENCODERS:
                points = sorted((c["length"], c[key]) for c in cells
                                if (c["runtime"], c["encoder"]) == (runtime, encoder) and c["status"] == "ok")
                if points:
                    x, y = zip(*points)
                    line, marker = STYLE[runtime]
                    ax.plot(x, y, line, marker=marker, color=COLOUR[encoder], label=f"{encoder} ({runtime})")
    floor = sorted((c["length"], c["median_ms"]) for c in latency
                   if (c["runtime"], c["encoder"]) == ("onnxruntime", "none") and c["status"] == "ok")
    if len(floor) > 1:  # slope guides through the floor's first point
        (x0, y0), x1 = floor[0], floor[-1][0]
        for power, label in ((1, "∝ L"), (2, "∝ L²")):
            time_ax.plot([x0, x1], [y0, y0 * (x1 / x0) ** power], color="black", alpha=0.25, linewidth=0.8)
            time_ax.annotate(label, (x1, y0 * (x1 / x0) ** power), fontsize=8, alpha=0.5)
    served_ok = [c for c in served.get("cells", []) if c["status"] == "ok"]
    for encoder in ENCODERS:
        points = sorted((c["length"], c["served_p50_ms"]) for c in served_ok if c["encoder"] == encoder)
        if points:
            x, y = zip(*points)
            time_ax.plot(x, y, ":", marker="*", markersize=11, color=COLOUR[encoder], label=f"{encoder} (Triton, gRPC p50)")
    for ax, title, unit in ((time_ax, "latency per sequence, batch 1 (median)", "ms"),
                            (memory_ax, "peak memory of one call above the built model", "MB")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    skipped = sorted({f"{c['encoder']} ({c['runtime']}) L={c['length']}" for c in latency if c["status"] != "ok"})
    if skipped:
        time_ax.text(0.01, 0.99, "not run: " + ", ".join(skipped), transform=time_ax.transAxes, fontsize=7, va="top", wrap=True)
    for ax, where in ((time_ax, "lower right"), (memory_ax, "upper left")):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc=where)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_tables(latency: list[dict], memory: list[dict], served: dict, targets: list[dict], lengths: Sequence[int]) -> None:
    table = Table(title="latency (median ms) and peak memory (MB above the built model), batch 1")
    table.add_column("runtime")
    table.add_column("encoder")
    for length in lengths:
        table.add_column(f"L={length}", justify="right")
    peaks = {(c["runtime"], c["encoder"], c["length"]): c for c in memory}
    for runtime in RUNTIMES:
        for encoder in ENCODERS:
            row = []
            for length in lengths:
                cell = next(c for c in latency if (c["runtime"], c["encoder"], c["length"]) == (runtime, encoder, length))
                if cell["status"] != "ok":
                    row.append("not run")
                    continue
                peak = peaks.get((runtime, encoder, length))
                memory_text = f"{peak['peak_above_baseline_mb']:.0f} MB" if peak and peak["status"] == "ok" else "-"
                row.append(f"{cell['median_ms']:.1f}\n{memory_text}")
            table.add_row(runtime, encoder, *row)
    console.print(table)
    for reason in sorted({c["status"] for c in latency + memory if c["status"] != "ok"}):
        console.print(f"  {reason}")
    if served["status"] != "ok":
        console.print(f"served: {served['status']}")
    else:
        served_table = Table(title="served through Triton (gRPC) vs in-process onnxruntime, p50 ms")
        for column in ("encoder", "L", "served p50", "served p99", "in-process p50", "served / in-process"):
            served_table.add_column(column, justify="right")
        for cell in served["cells"]:
            if cell["status"] == "ok":
                served_table.add_row(cell["encoder"], str(cell["length"]), f"{cell['served_p50_ms']:.1f}", f"{cell['served_p99_ms']:.1f}",
                                     f"{cell['in_process_p50_ms']:.1f}", f"{cell['served_over_in_process']:.2f}")
            else:
                served_table.add_row(cell["encoder"], str(cell["length"]), cell["status"], "", "", "")
        console.print(served_table)
    goals = Table(title="targets (judged on medians; minima for comparison: far apart = a noisy run)")
    for column in ("ratio", "from medians", "from minima", "target"):
        goals.add_column(column)
    for row in targets:
        style = None if row["met"] is None else ("green" if row["met"] else "red")
        goals.add_row(row["ratio"], _fmt(row["value"]), _fmt(row["value_from_min"]), row["target"], style=style)
    console.print(goals)


# --------------------------------------------------------------------------------------------- main


def _lengths(text: str, default: Sequence[int]) -> list[int]:
    return sorted({int(part) for part in text.replace(" ", "").split(",") if part}) if text else list(default)


def main(
    quick: bool = typer.Option(False, help="L up to 2048, fewer repeats, shorter budgets (for development)."),
    lengths: str = typer.Option("", help="Comma-separated sequence lengths (default 256…16384; --quick: 256…2048)."),
    n_features: int = typer.Option(EncoderSpec.n_features, help="FAVOR+ random features m."),
    repeats: int = typer.Option(15, help="Most timed calls per cell (--quick: 7)."),
    min_repeats: int = typer.Option(3, help="Fewest timed calls per cell (unless one call exceeds --cell-time-limit)."),
    cell_budget: float = typer.Option(2.5, help="Seconds of timed calls per encoder cell (--quick: 1)."),
    time_budget: float = typer.Option(540.0, help="Whole run, seconds; latency gets ~45%, memory and serving the rest."),
    cell_time_limit: float = typer.Option(Limits.cell_time_limit_s, help="Skip a cell whose projected call time exceeds this (s)."),
    softmax_max_length: int = typer.Option(Limits.softmax_max_length, help="Longest L for exact attention."),
    softmax_memory_cap_gb: float = typer.Option(Limits.softmax_memory_cap_gb, help="Skip exact attention above this projected L x L memory."),
    memory: bool = typer.Option(True, help="Measure peak memory (one subprocess per cell)."),
    served: bool = typer.Option(True, help="Measure served latency (only if the onnxruntime backend exists)."),
    served_lengths: str = typer.Option("256,1024,4096", help="Lengths served through Triton (those measured in-process)."),
) -> None:
    deadline = Deadline(time_budget)
    torch.set_num_threads(THREADS)
    chosen = _lengths(lengths, QUICK_LENGTHS if quick else LENGTHS)
    if quick:
        repeats, cell_budget = min(repeats, 7), min(cell_budget, 1.0)
    spec = EncoderSpec(n_features=n_features)
    limits = Limits(softmax_max_length, softmax_memory_cap_gb, cell_time_limit)
    RESULTS.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    console.print(f"encoders: PerformerClassifier {asdict(spec)}; lengths {chosen}; load average {load_before[0]:.2f}")
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        console.print(f"[yellow]the machine is busy (load average {load_before[0]:.2f} on {os.cpu_count()} CPUs): "
                      "timings will be noisy, eager PyTorch's most (each of its many parallel ops waits for both threads)[/]")

    encoders = build_encoders(spec)
    onnx_files = {kind: export_encoder(encoders[kind], WORK / f"{kind}.onnx") for kind in ENCODERS}
    run = runners(encoders, onnx_files)
    check = sequence(min(chosen), spec)
    with torch.inference_mode():
        parity = {kind: float(np.abs(run["torch"][kind](check).numpy() - run["onnxruntime"][kind](check)[0]).max())
                  for kind in ENCODERS}
    console.print(f"exported to {WORK}; |torch - onnxruntime| at L={min(chosen)}: "
                  + ", ".join(f"{k} {v:.1e}" for k, v in parity.items()))

    console.print("in-process latency (torch eager and onnxruntime, 2 threads)…")
    latency = measure_latency(run, chosen, spec, limits, max_repeats=repeats, min_repeats=min_repeats,
                              cell_budget_s=cell_budget, phase_budget_s=0.45 * deadline.left())
    del run
    memory_cells: list[dict] = []
    if memory:
        console.print(f"peak memory (one subprocess per cell; {deadline.elapsed():.0f} s so far)…")
        # Keep time for the served part, which carries a target of its own.
        reserve = 90.0 if served else 0.0
        memory_cells = measure_memory(latency, chosen, spec, onnx_files, Deadline(max(0.0, deadline.left() - reserve)))
    served_result: dict = {"status": "not run: --no-served", "cells": []}
    if served:
        console.print(f"served through Triton ({deadline.elapsed():.0f} s so far)…")
        try:
            served_result = measure_served(
                onnx_files, [L for L in _lengths(served_lengths, ()) if L in chosen], spec, latency,
                max_repeats=repeats, min_repeats=min_repeats, cell_budget_s=cell_budget * 2, deadline=deadline,
            )
        except Exception as exc:  # noqa: BLE001 - keep the in-process results; the log says what Triton said
            served_result = {"status": f"failed: {type(exc).__name__}: {exc}".splitlines()[0][:300], "cells": []}
            console.print(f"[red]served part {served_result['status']} (see {WORK / 'tritonserver.log'})[/]")
    ratios, targets = ratios_and_targets(latency, memory_cells, served_result, chosen)
    print_tables(latency, memory_cells, served_result, targets, chosen)
    load_after = os.getloadavg()
    import onnxruntime  # noqa: PLC0415

    result = {
        "spec": asdict(spec), "lengths": chosen, "quick": quick, "limits": asdict(limits),
        "settings": {"threads": THREADS, "repeats": repeats, "min_repeats": min_repeats, "cell_budget_s": cell_budget,
                     "time_budget_s": time_budget},
        "environment": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "cpus": os.cpu_count(),
                        "load_average_before": load_before, "load_average_after": load_after},
        "onnx_parity_max_abs": parity, "latency": latency, "memory": memory_cells, "served": served_result,
        "ratios": ratios, "targets": targets, "seconds": deadline.elapsed(),
    }
    (RESULTS / "performer.json").write_text(json.dumps(result, indent=1))
    plot(latency, memory_cells, served_result, RESULTS / "performer.png")
    console.print(f"wrote {RESULTS / 'performer.json'} and {RESULTS / 'performer.png'} in {deadline.elapsed():.0f} s "
                  f"(load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    typer.run(main)
