"""Checkpoints: Orbax run directories (`run_dir`), import of original `.pt` files
(`torch_import`; the args -> config part is `nepa3d_jax.config.torch_args`) and
`load_pretrained` for inference.

`load_pretrained` is imported lazily so that importing this package (e.g. for
`checkpoint.torch_file`, used by the review tools) does not pull in Flax or the model.
"""

from typing import Any

__all__ = ["load_pretrained", "Pretrained"]


def __getattr__(name: str) -> Any:
    if name in ("load_pretrained", "Pretrained"):
        from nepa3d_jax.checkpoint import pretrained
        return getattr(pretrained, name)
    raise AttributeError(f"module 'nepa3d_jax.checkpoint' has no attribute {name!r}")
