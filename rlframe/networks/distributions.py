"""The probability maths every agent shares, written once: softmax, categorical and diagonal-Gaussian policies, and
forward passes over arrays too large for one call.

Two flavours of the same formulas:

- numpy (acting on a snapshot, off-policy evaluation, filters of actions): :func:`softmax`, :func:`log_softmax`;
- MXNet, for loss graphs: functions taking ``F`` first (``mxnet.nd`` or ``mxnet.sym``, as Gluon's
  ``hybrid_forward`` receives it): :func:`categorical_log_prob_entropy`, :func:`gaussian_log_prob_entropy`.

Shapes: B = batch, A = discrete actions, K = action dimensions.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

#: rows per call in :func:`chunked`: large enough that MXNet's per-call cost (~0.3 ms) is amortised, small enough
#: that a call's temporaries stay in cache-sized arrays (a 4,096 x 512 float32 activation is 8 MiB)
CHUNK_ROWS = 4096

_LOG_2PI = math.log(2.0 * math.pi)


# ---- numpy ------------------------------------------------------------------------------------------------
def log_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``log softmax(logits / temperature)`` along the last axis, (..., A) -> (..., A).

    The row maximum is subtracted first, so large logits cannot overflow; float64 inputs stay float64.
    """
    scaled = np.asarray(logits) / temperature if temperature != 1.0 else np.asarray(logits)
    shifted = scaled - scaled.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis, (..., A) -> (..., A); every row sums to 1."""
    scaled = np.asarray(logits) / temperature if temperature != 1.0 else np.asarray(logits)
    weights = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def sample_categorical(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``probs`` (N, A), rows summing to 1: int64 actions (N,). Inverse-CDF with one uniform
    per row; the min keeps a row whose cumulative sum rounds below the draw on the last action."""
    draws = rng.random((probs.shape[0], 1))
    return np.minimum((probs.cumsum(axis=1) < draws).sum(axis=1), probs.shape[1] - 1).astype(np.int64)


def chunked(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rows: int = CHUNK_ROWS) -> np.ndarray:
    """``forward`` applied to ``x`` (N, ...) in slices of ``rows`` rows, concatenated: (N, ...) -> (N, ...).

    For networks run over a whole dataset (off-policy evaluation, reward and imitation models, PPO's frozen
    old policy): one call per slice keeps memory bounded whatever N is. An empty ``x`` gives ``forward`` one
    empty call, so the result keeps its trailing shape.
    """
    if len(x) <= rows:
        return forward(x)
    return np.concatenate([forward(x[start:start + rows]) for start in range(0, len(x), rows)])


# ---- MXNet (F = mxnet.nd or mxnet.sym) ------------------------------------------------------------------------
def categorical_log_prob_entropy(F: Any, logits: Any, action: Any) -> tuple[Any, Any]:
    """log pi(a|s) (B,) of integer-valued actions (B,) under softmax(logits (B, A)), and the entropy (B,)."""
    log_p = F.log_softmax(logits, axis=1)
    return F.pick(log_p, action, axis=1), -F.sum(F.exp(log_p) * log_p, axis=1)


def gaussian_log_prob_entropy(F: Any, mean: Any, log_std: Any, action: Any) -> tuple[Any, Any]:
    """log N(a; mean, diag(exp(log_std))^2) (B,) of actions (B, K), summed over the K dimensions, and the
    entropy (B,); ``mean`` and ``log_std`` are (B, K)."""
    z = (action - mean) / F.exp(log_std)
    log_prob = F.sum(-0.5 * F.square(z) - log_std - 0.5 * _LOG_2PI, axis=1)
    return log_prob, F.sum(log_std + 0.5 * (_LOG_2PI + 1.0), axis=1)
