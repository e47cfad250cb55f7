"""QueryNepa (the original's causal arch): token embedding -> pre-LN transformer -> head.

  z     = token_mlp(feat) + type_emb(type_id) + pos_emb[:, :T]   the input embeddings
  h     = encoder(z)                                             hidden states (no final norm)
  z_hat = pred_head(h)                                           predicted next embedding

Opt-in readout fields (defaults = the original): `final_norm` puts a LayerNorm after the encoder
(h and z_hat are then read from normalised states, as the 2D NEPA does); `type_emb_std` scales
the type table's N(0, std) init (torch's default 1.0 lets the type embedding swamp a pooled
readout: docs/evaluation.md); `answer_head` adds a linear head predicting the next token's raw
feature slots (built when `train.answer_loss_weight > 0`).

`__call__` returns `(z, z_hat, h)` like the original's `forward`. Attention is causal unless
`is_causal=False` (bidirectional: the classification protocol). `attn_mask_BTT` is an extra
*allowed* mask (True = may attend, shape (B or 1, T, T)), e.g. the training-time dual mask
of `nepa3d_jax.train.masks`; it is intersected with causality when `is_causal`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nepa3d_jax.model import attention as attn_lib
from nepa3d_jax.model.transformer import Encoder, dense, layer_norm

FEAT_DIM = 15
NUM_TYPES = 9          # Q/A vocabulary; legacy (qa_tokens=0) checkpoints have 5 rows
POS_EMB_STD = 0.02     # the original's trunc_normal_(std=0.02) (bounds +-2 never bind)


class QueryNepa(nn.Module):
    d_model: int = 384
    layers: int = 8
    heads: int = 6
    mlp_ratio: float = 4.0
    max_len: int = 2048
    attention: str = "auto"
    dtype: Any = jnp.float32
    n_types: int = NUM_TYPES
    feat_dim: int = FEAT_DIM
    remat: bool = False
    final_norm: bool = False
    type_emb_std: float = 1.0
    answer_head: bool = False   # a linear head h -> raw features of the next token (opt-in aux)

    def setup(self):
        attn_lib.check_implementation(self.attention)
        if self.d_model % self.heads:
            raise ValueError(f"model.d_model={self.d_model} is not divisible by "
                             f"model.heads={self.heads}")
        d = self.d_model
        self.token_mlp_0 = dense(d, self.feat_dim, self.dtype)
        self.token_mlp_2 = dense(d, d, self.dtype)
        self.type_emb = nn.Embed(self.n_types, d, dtype=self.dtype, param_dtype=jnp.float32,
                                 embedding_init=nn.initializers.normal(self.type_emb_std))
        self.pos_emb = self.param("pos_emb", nn.initializers.normal(POS_EMB_STD),
                                  (1, self.max_len, d), jnp.float32)
        # torch's int(d_model * mlp_ratio) for the original's integer ratios.
        self.backbone = Encoder(d, self.layers, self.heads, int(d * self.mlp_ratio),
                                self.attention, self.dtype, self.remat)
        self.pred_head = dense(d, d, self.dtype)
        if self.final_norm:
            self.final_ln = layer_norm(self.dtype, "final_ln")
        if self.answer_head:
            self.answer_proj = dense(self.feat_dim, d, self.dtype)

    def predict_answer(self, h_BTD: jax.Array) -> jax.Array:
        """(B, T, feat_dim): the next token's raw feature slots predicted from h (the opt-in
        `train.answer_loss_weight` objective)."""
        return self.answer_proj(h_BTD)

    def _encode(self, z_BTD: jax.Array, attn_mask_BTT: jax.Array | None, is_causal: bool,
                rows_M: jax.Array | None = None) -> jax.Array:
        """Hidden states h: the encoder, then the final LayerNorm when `final_norm`."""
        h = self.backbone(z_BTD, attn_mask_BTT, bool(is_causal), rows_M)
        return self.final_ln(h) if self.final_norm else h

    def embed_tokens(self, feat_BTF: jax.Array, type_id_BT: jax.Array) -> jax.Array:
        """z = token_mlp(feat) + type_emb(type_id) + pos_emb[:, :T] (the NEPA/MAE targets)."""
        t = feat_BTF.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds the positional table max_len="
                             f"{self.max_len}; resize pos_emb (load_pretrained(max_len=...))")
        if feat_BTF.shape[-1] != self.feat_dim:
            raise ValueError(f"feat has {feat_BTF.shape[-1]} slots per token, expected "
                             f"{self.feat_dim}")
        x = self.token_mlp_0(feat_BTF.astype(self.dtype))
        x = self.token_mlp_2(nn.gelu(x, approximate=False))
        pos = self.pos_emb[:, :t].astype(self.dtype)
        return x + self.type_emb(type_id_BT) + pos

    def embed_parts(self, feat_BTF: jax.Array, type_id_BT: jax.Array
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(z, content, type_pos): `z` exactly as `embed_tokens`, its content part
        token_mlp(feat) and its layout part type_emb + pos_emb (z = content + type_pos)."""
        z = self.embed_tokens(feat_BTF, type_id_BT)
        x = self.token_mlp_2(nn.gelu(self.token_mlp_0(feat_BTF.astype(self.dtype)),
                                     approximate=False))
        pos = self.pos_emb[:, :feat_BTF.shape[1]].astype(self.dtype)
        return z, x, self.type_emb(type_id_BT) + pos

    def forward_parts(self, feat_BTF: jax.Array, type_id_BT: jax.Array, *,
                      is_causal: bool = True, attn_mask_BTT: jax.Array | None = None
                      ) -> tuple[jax.Array, ...]:
        """(z, content, type_pos, z_hat, h): `__call__`'s outputs plus the two parts of z
        (the NEPA shortcut diagnostic and `model.nepa_target="content"` read them)."""
        z, content, type_pos = self.embed_parts(feat_BTF, type_id_BT)
        h = self._encode(z, attn_mask_BTT, is_causal)
        return z, content, type_pos, self.pred_head(h), h

    def __call__(self, feat_BTF: jax.Array, type_id_BT: jax.Array, *, is_causal: bool = True,
                 attn_mask_BTT: jax.Array | None = None, deterministic: bool = True
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(z, z_hat, h), each (B, T, d_model). Dropout is 0 in the original, so
        `deterministic` changes nothing; it is accepted for the usual Flax call signature."""
        del deterministic
        z = self.embed_tokens(feat_BTF, type_id_BT)
        h = self._encode(z, attn_mask_BTT, is_causal)
        if self.answer_head and self.is_initializing():
            self.predict_answer(h)  # create its parameters with the others
        return z, self.pred_head(h), h

    def represent(self, feat_BTF: jax.Array, type_id_BT: jax.Array, rows_M: jax.Array, *,
                  is_causal: bool = True, attn_mask_BTT: jax.Array | None = None
                  ) -> tuple[jax.Array, jax.Array]:
        """(z_hat, h) at the positions `rows_M` only, each (B, M, d_model): the same values as
        `__call__`'s rows, with the last layer computed for those rows alone (inference).
        `attn_mask_BTT` as in `__call__` (e.g. CPAC's opt-in query isolation)."""
        z = self.embed_tokens(feat_BTF, type_id_BT)
        h = self._encode(z, attn_mask_BTT, is_causal, rows_M)
        return self.pred_head(h), h
