"""FAVOR+ attention (Choromanski et al., "Rethinking Attention with Performers", ICLR 2021) and exact softmax attention.

Both attentions share one interface, :class:`MultiHeadAttention`, whose learnable parameters are named and shaped
identically in either mode; FAVOR+ keeps its random projection only in buffers. A model trained with exact softmax
attention therefore loads into a Performer unchanged (:func:`load_attention_weights`), and the projection is baked
into an exported ONNX graph as a constant.

Every contraction is a batched ``torch.matmul`` on ``[B, H, L, ·]`` tensors, never ``einsum``: both export to ONNX,
but in onnxruntime on CPU performer-pytorch's Einsum graph took 3-4x as long as this MatMul one at L = 8192
(DECISION.md). Nothing branches on tensor values and no shape depends on data, so batch and sequence length stay
dynamic in the exported graph (opset 17).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FAVOR_BUFFERS",
    "Kernel",
    "MultiHeadAttention",
    "favor_attention",
    "favor_features",
    "load_attention_weights",
    "orthogonal_gaussian",
    "softmax_attention",
]

Kernel = Literal["softmax", "relu"]

# Positive features are floored so that no query's normaliser is exactly zero; the values are those of the paper's
# reference code (numerical_stabilizer of softmax_kernel_transformation and of generalized_kernel_transformation).
SOFTMAX_KERNEL_EPS = 1e-6
RELU_KERNEL_EPS = 1e-3

# Names of the FAVOR+ state that MultiHeadAttention keeps in buffers (never parameters): the projection W, the seed
# its redraws derive from, and the count of training steps that schedules them.
FAVOR_BUFFERS = frozenset({"projection", "feature_seed", "training_steps"})


def orthogonal_gaussian(m: int, d: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Draw the ``[m, d]`` projection W of positive orthogonal random features (paper Sec. 2.4, "ORF").

    Rows within each d x d block are exactly orthogonal, which lowers the estimator's variance for any m (Theorem 2);
    blocks are independent, so m may exceed d. Each row is then rescaled by the norm of an independent Gaussian
    d-vector (chi(d)-distributed), so every row is marginally N(0, I_d) as the unbiased estimator requires.
    """
    n_blocks = -(-m // d)
    gaussian = torch.randn(n_blocks, d, d, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    # QR's sign convention biases Q; flipping columns by sign(diag R) makes each block Haar-distributed (Mezzadri 2007).
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    blocks = q.transpose(-2, -1).reshape(n_blocks * d, d)[:m]
    norms = torch.randn(m, d, generator=generator).norm(dim=-1, keepdim=True)
    return blocks * norms


def favor_features(
    x: Tensor, projection: Tensor, *, is_query: bool, kernel: Kernel = "softmax", causal: bool = False
) -> Tensor:
    """Map queries or keys ``x: [B, H, L, d]`` to random features ``phi(x): [B, H, L, m]``.

    ``x`` is scaled by d^-1/4 on both sides so that phi(q)·phi(k) estimates exp(q·k / sqrt(d)), the softmax kernel of
    scaled dot-product attention. The softmax kernel uses positive features (Lemma 1, eq. 7):
    phi(x) = exp(Wx - |x|^2 / 2) / sqrt(m), whose estimates are never negative, unlike trigonometric features.
    Before exp, the largest Wx is subtracted as in the reference code: per query row (a per-query factor that cancels
    between the numerator and the normaliser of that query) and one maximum over all keys and features of a
    (batch, head) (a factor shared by all keys, which cancels too). The max carries no gradient. Features are then
    floored by a small eps, except for keys of causal attention (``causal=True``): their shared maximum spans the
    whole sequence, and a floor added after the shift would not cancel, so a large later key would rescale earlier
    keys' features against the floor and change earlier outputs (by up to 0.27 at L = 50 when later inputs were
    made 4x larger). Without the floor the shift cancels exactly; a query that sees only zero features gets a zero
    output from the clamped normaliser in :func:`favor_attention`.
    The ReLU kernel is generalized attention (Sec. 2.2): phi(x) = relu(Wx) + eps; it has no data-dependent shift.
    """
    x = x * projection.shape[-1] ** -0.25
    wx = x @ projection.to(x.dtype).transpose(-2, -1)
    if kernel == "relu":
        return F.relu(wx) + RELU_KERNEL_EPS
    half_sq_norm = 0.5 * (x * x).sum(dim=-1, keepdim=True)
    max_dims = (-1,) if is_query else (-2, -1)
    stabiliser = torch.amax(wx, dim=max_dims, keepdim=True).detach()
    features = torch.exp(wx - half_sq_norm - stabiliser)
    if is_query or not causal:
        features = features + SOFTMAX_KERNEL_EPS
    return features * projection.shape[0] ** -0.5


def favor_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    projection: Tensor,
    *,
    mask: Optional[Tensor] = None,
    causal: bool = False,
    kernel: Kernel = "softmax",
    chunk_size: int = 64,
) -> Tensor:
    """FAVOR+ attention of ``q, k, v: [B, H, L, d]`` in O(L m d) time; returns ``[B, H, L, d_v]``.

    Computes D^-1 (phi(Q) (phi(K)^T V)) with D = diag(phi(Q) (phi(K)^T 1)) (eq. 5), reading the product
    right-to-left so that the L x L matrix is never formed. A column of ones appended to V yields the normaliser
    in the same matmuls as the numerator. ``mask`` ([B, L] bool, True = real token) removes padded keys from both:
    their inputs are zeroed before the key maximum is taken (a huge padded key would otherwise underflow every real
    key's features) and their feature rows are zeroed after. Padded queries get finite, meaningless outputs.
    Causal attention uses prefix sums (Sec. 2.6 / Appendix B.1), chunked by ``chunk_size``; see
    :func:`_causal_linear_attention`.
    """
    if mask is not None:
        keep = mask[:, None, :, None].to(k.dtype)
        k = k * keep
    phi_q = favor_features(q, projection, is_query=True, kernel=kernel)
    phi_k = favor_features(k, projection, is_query=False, kernel=kernel, causal=causal)
    if mask is not None:
        phi_k = phi_k * keep
    v_and_ones = F.pad(v, (0, 1), value=1.0)
    if causal:
        out = _causal_linear_attention(phi_q, phi_k, v_and_ones, chunk_size)
    else:
        out = phi_q @ (phi_k.transpose(-2, -1) @ v_and_ones)
    # A query that sees no real key has a zero normaliser and a zero numerator: clamp gives 0, not NaN.
    return out[..., :-1] / out[..., -1:].clamp_min(torch.finfo(out.dtype).tiny)


def _causal_linear_attention(phi_q: Tensor, phi_k: Tensor, v: Tensor, chunk_size: int) -> Tensor:
    """Unnormalised causal sum_{j<=i} (phi(q_i)·phi(k_j)) v_j for ``phi_*: [B, H, L, m]``, ``v: [B, H, L, e]``.

    The paper's prefix sum of the outer products phi(k_j) v_j^T holds an m x e state per position: O(L m e) memory
    (268 MB per batch-head in float32 at L = 8192, m = 128, e = 64). Chunking bounds it: the sequence is cut into
    blocks of C positions; the prefix sum runs over blocks (L/C states, an exclusive cumsum), and the C x C
    lower-triangular interaction inside each block is computed directly. Memory is O(L C + (L / C) m e) and time
    O(L C (m + e) + L m e); C = 1 is the plain per-position cumsum. No Python loop, so the sequence axis stays
    dynamic in an exported graph; the sequence is zero-padded to a multiple of C (zero features add nothing).
    """
    length = phi_q.shape[-2]
    pad = (-length) % chunk_size
    blocks = [F.pad(t, (0, 0, 0, pad)).unflatten(-2, (-1, chunk_size)) for t in (phi_q, phi_k, v)]
    q_blocks, k_blocks, v_blocks = blocks  # [B, H, L/C, C, ·]
    block_states = k_blocks.transpose(-2, -1) @ v_blocks  # [B, H, L/C, m, e]
    earlier_states = torch.cumsum(block_states, dim=2) - block_states
    lower = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=phi_q.device).tril()
    within = ((q_blocks @ k_blocks.transpose(-2, -1)) * lower) @ v_blocks
    out = q_blocks @ earlier_states + within
    return out.flatten(2, 3)[..., :length, :]


def softmax_attention(
    q: Tensor, k: Tensor, v: Tensor, *, mask: Optional[Tensor] = None, causal: bool = False
) -> Tensor:
    """Exact scaled dot-product attention softmax(q k^T / sqrt(d)) v with a masked L x L matrix: the baseline.

    Same semantics as :func:`favor_attention`: ``mask`` ([B, L] bool, True = real token) hides padded keys,
    ``causal`` hides later keys. Hidden scores are set to the dtype's minimum rather than -inf, so a query that
    sees no key at all (a padded one) averages all values instead of producing NaN.
    """
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    allowed = _allowed_keys(q.shape[-2], mask, causal, q.device)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) @ v


def _allowed_keys(length: int, mask: Optional[Tensor], causal: bool, device: torch.device) -> Optional[Tensor]:
    """Boolean [B or 1, 1, L or 1, L] of the keys each query may attend to, or None when all are allowed."""
    allowed = None if mask is None else mask[:, None, None, :]
    if causal:
        positions = torch.arange(length, device=device)
        earlier = positions[:, None] >= positions[None, :]
        allowed = earlier if allowed is None else allowed & earlier
    return allowed


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention, exact (``attention="softmax"``) or FAVOR+ (``attention="favor"``).

    The learnable parameters (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``) are the same in both modes; FAVOR+
    adds only buffers (:data:`FAVOR_BUFFERS`): the ``[n_features, d_head]`` projection shared by all heads (as in
    the paper), the seed it is drawn from, and a training-step counter. In training mode the projection is redrawn
    every ``redraw_interval`` forward calls (Sec. 4.2: redrawing guards against one unlucky draw for the whole run;
    0 disables it), from a generator seeded with ``feature_seed + training_steps``, so runs are reproducible and a
    resumed checkpoint continues the same schedule. In eval mode, and so in an exported graph, the projection is a
    fixed constant. ``dropout`` applies to the output: FAVOR+ never forms attention weights to drop, and one
    placement keeps the two modes interchangeable.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        attention: Literal["favor", "softmax"] = "favor",
        n_features: int = 128,
        kernel: Kernel = "softmax",
        causal: bool = False,
        redraw_interval: int = 1000,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if attention not in ("favor", "softmax"):
            raise ValueError(f"attention must be 'favor' or 'softmax', not {attention!r}")
        if kernel not in ("softmax", "relu"):
            raise ValueError(f"kernel must be 'softmax' or 'relu', not {kernel!r}")
        if n_features < 1 or redraw_interval < 0:
            raise ValueError("n_features must be positive and redraw_interval non-negative")
        self.n_heads = n_heads
        self.attention = attention
        self.kernel = kernel
        self.causal = causal
        self.redraw_interval = redraw_interval
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        if attention == "favor":
            # Seeded from torch's global generator: torch.manual_seed fixes it, and layers get distinct features.
            seed = int(torch.randint(2**62, ()))
            self.register_buffer("feature_seed", torch.tensor(seed, dtype=torch.int64))
            self.register_buffer("training_steps", torch.tensor(0, dtype=torch.int64))
            self.register_buffer("projection", self._draw_projection(n_features, d_model // n_heads, seed))

    @staticmethod
    def _draw_projection(n_features: int, d_head: int, seed: int) -> Tensor:
        return orthogonal_gaussian(n_features, d_head, torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def _count_step_and_redraw(self) -> None:
        """Redraw the projection when a training step is a positive multiple of ``redraw_interval``."""
        step = int(self.training_steps)
        if step > 0 and step % self.redraw_interval == 0:
            n_features, d_head = self.projection.shape
            self.projection.copy_(self._draw_projection(n_features, d_head, int(self.feature_seed) + step))
        self.training_steps += 1

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Attend over ``x: [B, L, d_model]``; ``mask``: [B, L] bool, True = real token. Returns ``[B, L, d_model]``."""
        if self.attention == "favor" and self.training and self.redraw_interval > 0:
            self._count_step_and_redraw()
        q, k, v = (self._split_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        if self.attention == "favor":
            out = favor_attention(q, k, v, self.projection, mask=mask, causal=self.causal, kernel=self.kernel)
        else:
            out = softmax_attention(q, k, v, mask=mask, causal=self.causal)
        return self.dropout(self.out_proj(out.transpose(1, 2).flatten(2)))

    def _split_heads(self, x: Tensor) -> Tensor:
        # Not unflatten(-1, ...): traced through it, the sequence length was exported as a constant in the chunked
        # causal path, and onnxruntime failed on any other length.
        return x.reshape(x.shape[0], x.shape[1], self.n_heads, -1).transpose(1, 2)


def load_attention_weights(target: nn.Module, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Load ``state_dict`` into ``target`` across attention modes, e.g. a softmax-trained checkpoint into FAVOR+.

    Keys naming FAVOR+ buffers are the only ones allowed to differ: the target keeps its own projection when the
    checkpoint has none (softmax -> favor) and drops the checkpoint's when it has no use for it (favor -> softmax);
    present on both sides, they load. Any other missing or unexpected key raises KeyError before anything is
    loaded (a shape mismatch raises from ``load_state_dict``). Returns the FAVOR+ buffer keys that were skipped.
    """
    target_keys = set(target.state_dict())
    mismatched = target_keys.symmetric_difference(state_dict)
    not_buffers = sorted(key for key in mismatched if key.rsplit(".", 1)[-1] not in FAVOR_BUFFERS)
    if not_buffers:
        raise KeyError(f"state_dict and target differ in more than FAVOR+ buffers: {not_buffers}")
    target.load_state_dict({key: value for key, value in state_dict.items() if key in target_keys}, strict=False)
    return sorted(mismatched)
