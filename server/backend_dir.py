"""Assemble the ``--backend-directory`` that the embedded ``tritonserver`` loads.

The ``nvidia-pytriton`` wheel ships Triton 2.51.0 with its Python backend and
one backend stub per Python minor version. A backend directory for our server
holds:

* ``python/``: the wheel's Python backend plus the stub built for the running
  interpreter (the stub embeds libpython, so it must match);
* one folder per Python-based backend of ours (``server/backends/<name>/``),
  so a ``config.pbtxt`` that says ``backend: "fil"`` runs our ``model.py``
  through the Python backend, unchanged from a config written for NVIDIA's
  native backend.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

OUR_BACKENDS_DIR = Path(__file__).resolve().parent / "backends"


class TritonNotInstalled(RuntimeError):
    """The ``nvidia-pytriton`` wheel (which carries ``tritonserver``) is missing or incomplete."""


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces of the wheel-embedded Triton live on disk."""

    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "tritonserver" / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "tritonserver" / "backends" / "python"

    @property
    def library_dir(self) -> Path:
        """Shared libraries the binary and the stub link against (``libcudart`` among them)."""
        return self.root.parent / "nvidia_pytriton.libs"

    def stub_for(self, version: tuple[int, int]) -> Path:
        return self.root / "tritonserver" / "python_backend_stubs" / f"{version[0]}.{version[1]}" / "triton_python_backend_stub"


def find_triton() -> TritonInstall:
    """Locate the Triton shipped in the ``nvidia-pytriton`` wheel, or explain how to get it."""
    # find_spec, not import: only the wheel's files are used, and importing
    # pytriton would pull in its own (uninstalled) Python dependencies.
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotInstalled(
            "the tritonserver binary comes from the nvidia-pytriton wheel, which is not installed; "
            "run `make install` (pip install --no-deps nvidia-pytriton==0.7.0)"
        )
    install = TritonInstall(Path(next(iter(spec.submodule_search_locations))).resolve())
    stub = install.stub_for(sys.version_info[:2])
    for needed in (install.binary, install.python_backend, stub):
        if not needed.exists():
            raise TritonNotInstalled(f"incomplete nvidia-pytriton install: {needed} is missing")
    return install


def assemble_backend_dir(target: Path, install: TritonInstall | None = None) -> Path:
    """(Re)build ``target`` as a Triton backend directory and return it.

    Rebuilt on every start so an edited ``server/backends/*/model.py`` is
    picked up; it is a few megabytes of copies.
    """
    install = install or find_triton()
    if target.exists():
        shutil.rmtree(target)
    python_dir = target / "python"
    shutil.copytree(install.python_backend, python_dir, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(install.stub_for(sys.version_info[:2]), python_dir / "triton_python_backend_stub")
    for backend in sorted(OUR_BACKENDS_DIR.iterdir()):
        if (backend / "model.py").is_file():
            shutil.copytree(backend, target / backend.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target
