"""Bipartite attention: the GANformer transformer layer (Hudson & Zitnick 2021, §3; `transformer_layer` of the authors'
`training/networks.py`).

Notation: B batch; F = H·W "from" elements (image positions) or k latents; T "to" elements; C the from-tensor's
channels; `dim` the attention width; N heads of size h = dim/N; P_X, P_Y positional encodings of from/to elements.

Projections (equalized-lr dense layers with bias, named `weight_<x>` / `bias_<x>`):
    q  = X W_query,  qp = P_X W_from_pos,  Q = q + qp                          [B, F, dim]
    K  = Y W_key + P_Y W_to_pos,           V = Y W_value                        [B, T, dim]

Standard attention (simplex "l2n" when X = image and Y = latents; "n2l", "l2l", "n2n" likewise):
    S = Q Kᵀ / √h  (per head, + −10000 on masked-out latents)                  [B, N, F, T]
    A = softmax_T(S);  in training, dropout p/2 on cells then p/2 on whole "to" columns

k-means keys (`kmeans=True`, the released models): instead of K, learned centroids Cn = `toasgn_init`
[1, N, T, 2h] are matched against E = [q, qp] (content ⊕ position, concatenated then cut into heads, [B, N, F, 2h]):
    S₀ = (E ⊙ s₀) Cnᵀ / √h,  A₀ = softmax_T(S₀)           (s_i = `iter_i/st_weights`, init 1)
    for i ≥ 1:  M = (A / (Σ_F A + 1e-8))ᵀ,  Cn = M E,  Sᵢ = (E ⊙ sᵢ) Cnᵀ / √h,  A = softmax_T(Sᵢ)
    (the latent keys K are then unused: their variables exist only for checkpoint compatibility).

Optional gates: A ← A ⊙ σ(W_g X + W_gp P_X + 1) (`img_gate`) and/or ⊙ σ(W_g Y + W_gp P_Y) (`ltnt_gate`).

Update and integration (`out` is C → C, or C → 2C for `both`):
    U = A V (heads concatenated) [B, F, dim];   c = U W_out
    X̂ = norm(X): `layer` over channels, `instance` over positions, `batch` over batch and positions; the kind of
        normalization follows the integration: centering for `add`, RMS scaling for `mul`, both for `both`
    add:  X' = X̂ + c         mul:  X' = X̂ ⊙ (1 + c)         both:  X' = X̂ ⊙ (1 + γ) + β,  [γ, β] = split(c)

So the released GANformer layer is X' = RMSNorm_C(X) ⊙ (1 + W_o · softmax_k(E ⊙ s · Cnᵀ/√h) · V + b_o), O(F·T·C).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from training.networks.layers import Dense, matmul_last
from training.networks.module import NamedModule, constant_init, normal_init

MASK_LOGIT = -10000.0
NORM_EPS = 1e-8


class AttentionLayer(NamedModule):
    """One bipartite attention layer: X `[B, F, C]` attends to Y `[B, T, d]` and is updated from it.

    Args:
        rng: Initialization RNG.
        from_dim: Channels C of the from-tensor X.
        to_dim: Channels of the to-tensor Y.
        dim: Attention width.
        num_heads: Number of heads N (must divide `dim`).
        from_pos_dim: Dimension of P_X, or None for no positions on the from side.
        to_pos_dim: Dimension of P_Y, or None.
        to_len: T, needed for k-means centroids.
        kmeans: Use learned centroid keys (see module docstring).
        kmeans_iters: Number of centroid iterations.
        norm: None, `layer`, `instance` or `batch`.
        integration: `add`, `mul` or `both`.
        img_gate: Gate attention by the from elements.
        ltnt_gate: Gate attention by the to elements.
        dropout: Attention dropout p (applied only in training).
        lrmul: Learning-rate multiplier of the projections.
        fused: Use the re-associated fast path (`_fused_*`, O(F·T·C)) when the to-set is small; the reference path
            computes every projection explicitly. Both are tested equal.
    """

    def __init__(self, rng: np.random.Generator, from_dim: int, to_dim: int, dim: int, num_heads: int = 1,
                 from_pos_dim: Optional[int] = None, to_pos_dim: Optional[int] = None, to_len: int = 0,
                 kmeans: bool = False, kmeans_iters: int = 1, norm: Optional[str] = None, integration: str = "add",
                 img_gate: bool = False, ltnt_gate: bool = False, dropout: float = 0.0, lrmul: float = 1.0,
                 fused: bool = True) -> None:
        super().__init__(rng)
        self.fused = fused
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.dim, self.heads, self.head_dim = dim, num_heads, dim // num_heads
        self.kmeans, self.kmeans_iters, self.norm, self.integration = kmeans, kmeans_iters, norm, integration
        self.dropout = dropout

        def dense(name: str, in_dim: int, out_dim: int) -> Dense:
            return self.add_child("", Dense(rng, in_dim, out_dim, lrmul=lrmul, names=(f"weight_{name}", f"bias_{name}")))

        self.query = dense("query", from_dim, dim)
        self.key = dense("key", to_dim, dim)
        self.value = dense("value", to_dim, dim)
        self.from_pos = dense("from_pos", from_pos_dim, dim) if from_pos_dim else None
        self.to_pos = dense("to_pos", to_pos_dim, dim) if to_pos_dim else None
        if kmeans:
            width = 2 * self.head_dim
            self.centroids = self.add_var("toasgn_init", (1, num_heads, to_len, width), normal_init())
            self.st_weights = [self.add_var(f"iter_{i}/st_weights", (num_heads, 1, width), constant_init(1.0))
                               for i in range(kmeans_iters)]
        self.gate_from = self._gate(rng, "gate_from", from_dim, from_pos_dim, lrmul) if img_gate else None
        self.gate_to = self._gate(rng, "gate_to", to_dim, to_pos_dim, lrmul) if ltnt_gate else None
        self.out = dense("out", dim, from_dim * (2 if integration == "both" else 1))

    def _gate(self, rng: np.random.Generator, name: str, in_dim: int, pos_dim: Optional[int],
              lrmul: float) -> tuple[Dense, Optional[Dense]]:
        main = self.add_child("", Dense(rng, in_dim, self.heads, lrmul=lrmul, names=(f"weight_{name}", f"bias_{name}")))
        pos = None
        if pos_dim:
            pos = self.add_child("", Dense(rng, pos_dim, self.heads, lrmul=lrmul,
                                           names=(f"weight_{name}_pos", f"bias_{name}_pos")))
        return main, pos

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        """`[B, L, N*c]` -> `[B, N, L, c]`."""
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], self.heads, x.shape[-1] // self.heads])
        return tf.transpose(x, [0, 2, 1, 3])

    def _logits(self, x: tf.Tensor, y: tf.Tensor, x_pos: Optional[tf.Tensor],
                y_pos: Optional[tf.Tensor]) -> tf.Tensor:
        """Attention logits `[B, N, F, T]` (standard keys)."""
        q = self.query(x)
        if self.from_pos is not None and x_pos is not None:
            q = q + self.from_pos(x_pos)
        k = self.key(y)
        if self.to_pos is not None and y_pos is not None:
            k = k + self.to_pos(y_pos)
        return tf.matmul(self._split_heads(q), self._split_heads(k), transpose_b=True) / math.sqrt(self.head_dim)

    def _kmeans(self, x: tf.Tensor, x_pos: Optional[tf.Tensor],
                mask: Optional[tf.Tensor]) -> tf.Tensor:
        """Attention probabilities `[B, N, F, T]` against learned (and optionally iterated) centroids."""
        q = self.query(x)
        qp = self.from_pos(x_pos) if self.from_pos is not None and x_pos is not None else tf.zeros_like(q)
        e = self._split_heads(tf.concat([q, qp], axis=-1))  # [B, N, F, 2h]
        centroids = self.centroids
        probs = None
        for i, st in enumerate(self.st_weights):
            if i > 0:
                assign = probs / (tf.reduce_sum(probs, axis=2, keepdims=True) + NORM_EPS)  # [B, N, F, T]
                centroids = tf.matmul(assign, e, transpose_a=True)  # [B, N, T, 2h]
            if i == 0:
                logits = _matmul_shared(e * st, centroids[0])
            else:
                logits = tf.matmul(e * st, centroids, transpose_b=True)
            logits = logits / math.sqrt(self.head_dim)  # [B, N, F, T]
            probs = _masked_softmax(logits, mask)
        return probs

    def _apply_gates(self, probs: tf.Tensor, x: tf.Tensor, y: tf.Tensor, x_pos: Optional[tf.Tensor],
                     y_pos: Optional[tf.Tensor]) -> tf.Tensor:
        if self.gate_from is not None:
            g = self.gate_from[0](x) + 1.0
            if self.gate_from[1] is not None and x_pos is not None:
                g = g + self.gate_from[1](x_pos)
            probs = probs * tf.transpose(tf.sigmoid(g), [0, 2, 1])[:, :, :, None]
        if self.gate_to is not None:
            g = self.gate_to[0](y)
            if self.gate_to[1] is not None and y_pos is not None:
                g = g + self.gate_to[1](y_pos)
            probs = probs * tf.transpose(tf.sigmoid(g), [0, 2, 1])[:, :, None, :]
        return probs

    def _dropout(self, probs: tf.Tensor, seed: Optional[tf.Tensor]) -> tf.Tensor:
        """Dropout p/2 on cells, then p/2 on whole "to" columns (shared over the from elements)."""
        rate = self.dropout / 2.0
        seeds = tf.random.experimental.stateless_split(seed, 2) if seed is not None else None
        cell = _dropout_mask(tf.shape(probs), rate, None if seeds is None else seeds[0])
        shape = tf.shape(probs)
        col = _dropout_mask(tf.stack([shape[0], shape[1], 1, shape[3]]), rate, None if seeds is None else seeds[1])
        return probs * cell * col

    def __call__(self, x: tf.Tensor, y: tf.Tensor, x_pos: Optional[tf.Tensor] = None,
                 y_pos: Optional[tf.Tensor] = None, mask: Optional[tf.Tensor] = None, training: bool = False,
                 seed: Optional[tf.Tensor] = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Runs the layer.

        Args:
            x: From-tensor `[B, F, C]`.
            y: To-tensor `[B, T, d]`.
            x_pos: `[F, D]` or `[B, F, D]` positional encodings of x.
            y_pos: `[T, D]` or `[B, T, D]` positional encodings of y.
            mask: Optional `[B, T]` float keep-mask (1 keep, 0 drop) over the to elements.
            training: Enables attention dropout.
            seed: Optional stateless RNG seed `[2]` for the dropout.

        Returns:
            `(x', probs)`: updated `[B, F, C]` and attention probabilities `[B, N, F, T]`.
        """
        fused = self.fused and y.shape[1] is not None and x.shape[1] is not None and y.shape[1] < x.shape[-1]
        x_pos_b, y_pos_b = _batched(x_pos, x), _batched(y_pos, y)
        if self.kmeans and fused and self.kmeans_iters == 1:
            probs = self._fused_kmeans_probs(x, x_pos, mask)
        elif self.kmeans:
            probs = self._kmeans(x, x_pos_b, mask)
        elif fused:
            probs = self._fused_standard_probs(x, y, x_pos, y_pos_b, mask)
        else:
            probs = _masked_softmax(self._logits(x, y, x_pos_b, y_pos_b), mask)
        probs_out = probs
        probs = self._apply_gates(probs, x, y, x_pos_b, y_pos_b)
        if training and self.dropout > 0:
            probs = self._dropout(probs, seed)
        if fused:
            control = self._fused_values(probs, y)
        else:
            v = self._split_heads(self.value(y))  # [B, N, T, h]
            u = tf.matmul(probs, v)  # [B, N, F, h]
            shape = tf.shape(u)
            u = tf.reshape(tf.transpose(u, [0, 2, 1, 3]), [shape[0], shape[2], self.dim])
            control = self.out(u)
        return self._integrate(x, control), probs_out

    # Fast path: re-associate the products so that no C x C projection runs over the F positions.
    def _fused_kmeans_probs(self, x: tf.Tensor, x_pos: Optional[tf.Tensor], mask: Optional[tf.Tensor]) -> tf.Tensor:
        """k-means probabilities `[B, N, F, T]` as `x · (W_q S_q Ĉ) + (b_q S_q Ĉ) + (P W_p + b_p) S_p Ĉ`.

        Ĉ `[2·dim, N·T]` is the block-diagonal matrix of the per-head centroids (head n's block covers features
        [2hn, 2h(n+1)) of E = [q, qp]) and S the `st_weights`, so `(E ⊙ s) Cnᵀ` needs only `[F, C] x [C, N·T]`.
        """
        n, width = self.heads, 2 * self.head_dim
        t = self.centroids.shape[2]
        cs = self.centroids[0] * self.st_weights[0]  # [N, T, 2h]
        eye = tf.eye(n)[:, None, :, None]  # [N, 1, N, 1]
        block = tf.reshape(tf.transpose(cs, [0, 2, 1])[:, :, None, :] * eye, [n * width, n * t])  # [2dim, N*T]
        wq, bq = self.query.effective()
        logits = matmul_last(x, tf.matmul(wq, block[:self.dim]))  # [B, F, N*T]
        const = tf.linalg.matvec(block[:self.dim], bq, transpose_a=True)  # [N*T]
        if self.from_pos is not None and x_pos is not None:
            qp = self.from_pos(x_pos)  # [F, dim] or [B, F, dim]
            const = const + matmul_last(qp, block[self.dim:])
        logits = (logits + const) / math.sqrt(self.head_dim)
        shape = tf.shape(x)
        logits = tf.transpose(tf.reshape(logits, [shape[0], shape[1], n, t]), [0, 2, 1, 3])
        return _masked_softmax(logits, mask)

    def _fused_standard_probs(self, x: tf.Tensor, y: tf.Tensor, x_pos: Optional[tf.Tensor],
                              y_pos: Optional[tf.Tensor], mask: Optional[tf.Tensor]) -> tf.Tensor:
        """Standard-key probabilities `[B, N, F, T]` as `x · (W_q Kᵀ) + (b_q + P W_p + b_p) Kᵀ` per head."""
        n, h = self.heads, self.head_dim
        k = self.key(y)
        if self.to_pos is not None and y_pos is not None:
            k = k + self.to_pos(y_pos)
        kh = self._split_heads(k)  # [B, N, T, h]
        wq, bq = self.query.effective()
        m = tf.einsum("cnh,bnth->bcnt", tf.reshape(wq, [wq.shape[0], n, h]), kh)
        logits = tf.einsum("bfc,bcnt->bnft", x, m)
        q0 = bq
        if self.from_pos is not None and x_pos is not None:
            q0 = q0 + self.from_pos(x_pos)
        if len(q0.shape) == 1:
            logits = logits + tf.einsum("nh,bnth->bnt", tf.reshape(q0, [n, h]), kh)[:, :, None, :]
        elif len(q0.shape) == 2:
            logits = logits + tf.einsum("fnh,bnth->bnft", tf.reshape(q0, [-1, n, h]), kh)
        else:
            logits = logits + tf.einsum("bfnh,bnth->bnft", tf.reshape(q0, [tf.shape(q0)[0], -1, n, h]), kh)
        return _masked_softmax(logits / math.sqrt(h), mask)

    def _fused_values(self, probs: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """`(A V) W_out + b_out` as `[A, 1] [V W_out; b_out]`: `[B, N, F, T]` x `[B, N, T, C]` -> `[B, F, C]`.

        The bias rides in the matmul as an extra row so that its gradient comes out of the matmul's gradient
        instead of a separate reduction over the `[B, F, C]` output.
        """
        n, h = self.heads, self.head_dim
        wo, bo = self.out.effective()
        vh = self._split_heads(self.value(y))  # [B, N, T, h]
        vw = tf.einsum("bnth,nhc->bntc", vh, tf.reshape(wo, [n, h, wo.shape[1]]))
        shape = tf.shape(probs)
        b, f, t, c = shape[0], shape[2], probs.shape[3], wo.shape[1]
        a = tf.reshape(tf.transpose(probs, [0, 2, 1, 3]), [b, f, n * t])
        a = tf.concat([a, tf.ones([b, f, 1], a.dtype)], axis=2)  # [B, F, N*T + 1]
        vw = tf.concat([tf.reshape(vw, [b, n * t, c]), tf.broadcast_to(bo[None, None], [b, 1, c])], axis=1)
        return tf.matmul(a, vw)

    def _integrate(self, x: tf.Tensor, control: tf.Tensor) -> tf.Tensor:
        """Normalizes x and modulates it by the attention output (see module docstring)."""
        x = normalize(x, self.norm, self.integration)
        if self.integration == "add":
            return x + control
        if self.integration == "mul":
            return x * (1.0 + control)
        gamma, beta = tf.split(control, 2, axis=-1)
        return x * (1.0 + gamma) + beta


def normalize(x: tf.Tensor, norm: Optional[str], integration: str) -> tf.Tensor:
    """Centers (`add`), RMS-scales (`mul`) or both (`both`) `x` `[B, F, C]` over the axes chosen by `norm`."""
    if norm is None:
        return x
    axes = {"layer": [2], "instance": [1], "batch": [0, 1]}[norm]
    mean = _channel_mean if norm == "layer" else (lambda t: tf.reduce_mean(t, axis=axes, keepdims=True))
    if integration in ("add", "both"):
        x = x - mean(x)
    if integration in ("mul", "both"):
        x = x * tf.math.rsqrt(mean(tf.square(x)) + NORM_EPS)
    return x


def _channel_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean over the last axis, `[..., C]` -> `[..., 1]`, as a matmul with a constant column (XLA on CPU runs that
    several times faster than its reduction over the innermost axis)."""
    c = x.shape[-1]
    ones = tf.fill([c, 1], tf.constant(1.0 / c, x.dtype))
    shape = tf.concat([tf.shape(x)[:-1], [1]], axis=0)
    return tf.reshape(tf.matmul(tf.reshape(x, [-1, c]), ones), shape)


def _matmul_shared(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """`a [B, N, F, c]` times the batch-shared `b [N, T, c]`ᵀ -> `[B, N, F, T]`, without broadcasting batch matmul
    (which crashes in TF 2.21's CPU kernel for some shapes)."""
    shape = tf.shape(a)
    a2 = tf.reshape(tf.transpose(a, [1, 0, 2, 3]), [a.shape[1], -1, a.shape[3]])  # [N, B*F, c]
    out = tf.matmul(a2, b, transpose_b=True)  # [N, B*F, T]
    out = tf.reshape(out, [a.shape[1], shape[0], shape[2], b.shape[1]])
    return tf.transpose(out, [1, 0, 2, 3])


def _batched(pos: Optional[tf.Tensor], ref: tf.Tensor) -> Optional[tf.Tensor]:
    if pos is None or len(pos.shape) == 3:
        return pos
    return tf.broadcast_to(tf.cast(pos, ref.dtype)[None], [tf.shape(ref)[0]] + pos.shape.as_list())


def _masked_softmax(logits: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
    if mask is not None:
        logits = logits + (1.0 - tf.cast(mask, logits.dtype))[:, None, None, :] * MASK_LOGIT
    return tf.nn.softmax(logits, axis=-1)


def _dropout_mask(shape: tf.Tensor, rate: float, seed: Optional[tf.Tensor]) -> tf.Tensor:
    if seed is None:
        keep = tf.random.uniform(shape) >= rate
    else:
        keep = tf.random.stateless_uniform(shape, seed) >= rate
    return tf.cast(keep, tf.float32) / (1.0 - rate)


class AttentionBlock(NamedModule):
    """Attention followed by a residual feed-forward block (the original's `nnlayer`).

    `h = Att(x, y)` (additive integration, no norm); `out = leaky_relu_0.2(Dense_1(Dense_0(h)) + x)` with `Dense_0`
    lrelu·√2 and `Dense_1` linear. Used for latent↔latent and image→latent updates and the mapping network.

    Args:
        rng: Initialization RNG.
        att_name: Scope of the attention layer (e.g. `AttLayer_0`, `AttLayer_n2l`), or None for a plain FF block.
        ff_name: Scope prefix of the two dense layers (`Dense0` -> `Dense0_0`, `Dense0_1`).
        dim: Width d of x.
        to_dim: Width of y.
        lrmul: Learning-rate multiplier of the dense layers.
        att_kwargs: Extra `AttentionLayer` arguments.
    """

    def __init__(self, rng: np.random.Generator, att_name: Optional[str], ff_name: str, dim: int, to_dim: int,
                 lrmul: float = 1.0, **att_kwargs) -> None:
        super().__init__(rng)
        self.att = None
        if att_name is not None:
            self.att = self.add_child(att_name, AttentionLayer(rng, dim, to_dim, dim, **att_kwargs))
        self.dense0 = self.add_child(f"{ff_name}_0", Dense(rng, dim, dim, act="lrelu", lrmul=lrmul))
        self.dense1 = self.add_child(f"{ff_name}_1", Dense(rng, dim, dim, lrmul=lrmul))

    def __call__(self, x: tf.Tensor, y: Optional[tf.Tensor] = None, **att_call) -> tuple[tf.Tensor, Optional[tf.Tensor]]:
        """`x`: `[B, T, d]` (or `[B, d]`); `y`: `[B, T', d']`. Returns `(out, probs or None)`."""
        h, probs = x, None
        if self.att is not None:
            h, probs = self.att(x, y, **att_call)
        out = self.dense1(self.dense0(h)) + x
        return tf.nn.leaky_relu(out, alpha=0.2), probs
