"""QueryNepa in Flax: embeddings, pre-LN transformer, prediction head, and the losses."""

from nepa3d_jax.model import losses
from nepa3d_jax.model.attention import IMPLEMENTATIONS, dot_product_attention
from nepa3d_jax.model.blockwise import blockwise_attention
from nepa3d_jax.model.pos_emb import resize_pos_emb
from nepa3d_jax.model.query_nepa import QueryNepa

__all__ = ["IMPLEMENTATIONS", "QueryNepa", "blockwise_attention", "dot_product_attention",
           "losses", "resize_pos_emb"]
