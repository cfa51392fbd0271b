"""tritonmm: a multi-model inference server on NVIDIA Triton.

Subpackages map onto the repository's top-level folders: ``tritonmm.server``
(``server/``: the embedded Triton runtime and its Python-based backends),
``tritonmm.export`` (``export/``: data, training and the model-repository
writer), ``tritonmm.client`` (``client/``) and ``tritonmm.loadtest``
(``loadtest/``).
"""

__version__ = "0.1.0"
