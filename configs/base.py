"""Base pretraining config: the fields every run shares (the seed plan's 1024-point setting).

The defaults live in the package (`nepa3d_jax.train.pretrain_defaults`, the `pretrain` job's
defaults); run files (runA.py .. runD.py) start from them and state only what differs.
Command:  python -m nepa3d_jax.main --config configs/base.py [--config.a.b=v ...]
Derived values (sequence length, global batch, effective LR, steps) are computed in
`nepa3d_jax.config.derived` from these fields and the device count; never set them here.
"""

from nepa3d_jax.train.pretrain_defaults import (SCAN_CACHE, SHAPENET_CACHE, get_config,
                                                mix_component, mix_mesh_udf_scan,
                                                mix_scan_pointcloud)

__all__ = ["SCAN_CACHE", "SHAPENET_CACHE", "get_config", "mix_component", "mix_mesh_udf_scan",
           "mix_scan_pointcloud"]
