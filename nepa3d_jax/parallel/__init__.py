"""Multi-host start-up (PBS, explicit env, single process), the device mesh and sharding rules."""

from nepa3d_jax.parallel.mesh import (
    batch_sharding, host_batch_to_global, make_mesh, param_shardings, replicated)
from nepa3d_jax.parallel.startup import initialize
from nepa3d_jax.parallel.topology import ProcessInfo, TopologyError, process_info_from_env

__all__ = [
    "ProcessInfo", "TopologyError", "batch_sharding", "host_batch_to_global", "initialize",
    "make_mesh", "param_shardings", "process_info_from_env", "replicated",
]
