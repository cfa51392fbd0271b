"""Performer encoder over a card's history that scores its LATEST transaction.

Inputs are the tokens of ``performer_featurize/history.py`` (one per transaction, oldest first, each computed
from earlier transactions only) and a right-padding mask; the output is the fraud probability of the last real
token of each history.

Why it is shaped this way:

* **No position table.** Nothing depends on a token's index, so any length runs, 16,384 included, though training
  sees at most a few hundred. Order and distance come from time instead: the model gathers the latest
  transaction's elapsed-minutes token (:data:`~history.TIME_COLUMN`) and gives every token the sinusoidal encoding
  of ``log1p(minutes before the latest transaction)``, plus a flag on the latest one. A card-testing burst
  "minutes before" and an old one "two years before" then look different at any length.
* **Bidirectional attention.** Tokens are causal by construction and only the latest is read out, so attending in
  both directions cannot see the future of the scored transaction; it is also FAVOR+'s cheaper path (no prefix
  sums). ``causal=True`` is available and changes no parameter.
* **Read-out at the last real token** via ``mask.sum(1) - 1`` and a gather: no data-dependent shapes, so the ONNX
  graph keeps batch and length dynamic.
* **Same parameters whatever the attention**: :class:`~attention.MultiHeadAttention` keeps FAVOR+'s projection in
  buffers, so a softmax-trained checkpoint loads into the FAVOR+ model with
  :func:`~attention.load_attention_weights`.
* **Sampling correction in a buffer.** Training sees all frauds but a fraction of the rest; ``logit_offset``
  (``log`` of that fraction, set after training) turns the sample's odds back into the population's, so
  ``fraud_probability`` is calibrated for real traffic while training minimises plain BCE on :meth:`logits`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from tritonmm.server.models.performer_featurize.history import TIME_COLUMN

from .attention import Kernel, MultiHeadAttention

__all__ = ["ModelConfig", "PerformerClassifier"]


@dataclass(frozen=True)
class ModelConfig:
    """Constructor arguments of :class:`PerformerClassifier` (defaults live there), saved as JSON with a checkpoint."""

    n_token_features: int
    d_model: int
    n_layers: int
    n_heads: int
    n_features: int
    attention: Literal["favor", "softmax"]
    kernel: Kernel
    causal: bool
    n_frequencies: int
    dropout: float
    redraw_interval: int


class _Block(nn.Module):
    """Pre-norm transformer block: attention and a feed-forward layer, each added to the residual stream."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.attention_norm = nn.LayerNorm(d)
        self.attention = MultiHeadAttention(
            d,
            config.n_heads,
            attention=config.attention,
            n_features=config.n_features,
            kernel=config.kernel,
            causal=config.causal,
            redraw_interval=config.redraw_interval,
            dropout=config.dropout,
        )
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(config.dropout))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attention(self.attention_norm(x), mask)
        return x + self.ffn(self.ffn_norm(x))


class PerformerClassifier(nn.Module):
    """``tokens [B, L, F]`` float32 + ``mask [B, L]`` bool (True = real, right-padded) -> ``[B, 1]`` probability."""

    def __init__(
        self,
        n_token_features: int,
        *,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        n_features: int = 128,
        attention: Literal["favor", "softmax"] = "favor",
        kernel: Kernel = "softmax",
        causal: bool = False,
        n_frequencies: int = 8,
        dropout: float = 0.1,
        redraw_interval: int = 1000,
    ) -> None:
        super().__init__()
        if not 0 <= TIME_COLUMN < n_token_features:
            raise ValueError(f"tokens need the time column {TIME_COLUMN}; got {n_token_features} features")
        self.config = ModelConfig(
            n_token_features, d_model, n_layers, n_heads, n_features, attention, kernel, causal, n_frequencies,
            dropout, redraw_interval,
        )
        # Angular frequencies 1/8 .. 16 per unit of log1p(minutes): periods from ~50 (minutes vs years) to ~0.4.
        frequencies = 2.0 ** (torch.arange(n_frequencies, dtype=torch.float32) - 3)
        self.register_buffer("frequencies", frequencies, persistent=False)
        feature_columns = [i for i in range(n_token_features) if i != TIME_COLUMN]
        self.register_buffer("feature_columns", torch.tensor(feature_columns), persistent=False)
        # Token features without the time column, the recency encoding, and the is-latest flag.
        self.embed = nn.Linear(len(feature_columns) + 2 * n_frequencies + 1, d_model)
        self.blocks = nn.ModuleList(_Block(self.config) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 1))
        self.register_buffer("logit_offset", torch.zeros(()))

    @classmethod
    def from_config(cls, config: ModelConfig) -> PerformerClassifier:
        options = asdict(config)
        return cls(options.pop("n_token_features"), **options)

    def set_sampling_rate(self, kept_share_of_negatives: float) -> None:
        """Calibrate :meth:`forward` for training on all frauds but only this share of the other transactions."""
        self.logit_offset.fill_(math.log(kept_share_of_negatives))

    def _inputs(self, tokens: Tensor, last: Tensor) -> Tensor:
        """Per-token model inputs: features, recency encoding relative to the latest transaction, latest flag."""
        elapsed = tokens[..., TIME_COLUMN]
        latest = elapsed.gather(1, last[:, None])
        recency = torch.log1p(torch.relu(latest - elapsed))[..., None] * self.frequencies
        is_latest = (torch.arange(tokens.shape[1], device=tokens.device)[None, :] == last[:, None]).to(tokens.dtype)
        features = tokens.index_select(-1, self.feature_columns)
        return torch.cat([features, torch.sin(recency), torch.cos(recency), is_latest[..., None]], dim=-1)

    def logits(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``[B, 1]`` logits of the training sample's odds (without ``logit_offset``)."""
        last = mask.to(torch.int64).sum(1) - 1
        x = self.embed(self._inputs(tokens, last))
        for block in self.blocks:
            x = block(x, mask)
        latest = x.gather(1, last[:, None, None].expand(-1, 1, x.shape[-1])).squeeze(1)
        return self.head(self.norm(latest))

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``fraud_probability [B, 1]`` of each history's latest transaction, calibrated for real traffic."""
        return torch.sigmoid(self.logits(tokens, mask) + self.logit_offset)
