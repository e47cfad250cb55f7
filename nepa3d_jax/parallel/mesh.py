"""The device mesh (`data` x `fsdp`) and the sharding rules for params, optimizer state, batches.

`data` spans every device of every host; `fsdp` (config.parallel.fsdp, default 1) splits
parameters and optimizer state inside each data group. A batch's leading dimension is sharded
over both axes, so every device sees a distinct slice of the global batch.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

AXES = ("data", "fsdp")
BATCH_SPEC = P(("data", "fsdp"))


def fsdp_size(config: ml_collections.ConfigDict | None) -> int:
    """`parallel.fsdp`; 1 (data-parallel only) without a config or for a job that has no
    `parallel` block (the evaluators)."""
    if config is None or "parallel" not in config:
        return 1
    return int(config.parallel.fsdp)


def make_mesh(config: ml_collections.ConfigDict | None = None, devices=None) -> Mesh:
    """Mesh over all global devices (or `devices`), shape (num_devices // fsdp, fsdp)."""
    devices = jax.devices() if devices is None else list(devices)
    fsdp = fsdp_size(config)
    if fsdp < 1 or len(devices) % fsdp:
        raise ValueError(f"parallel.fsdp={fsdp} must divide the device count {len(devices)}")
    shape = (len(devices) // fsdp, fsdp)
    return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * 2, devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, BATCH_SPEC)


def leaf_spec(shape: tuple[int, ...], fsdp: int, min_size: int = 2**14) -> P:
    """Shard the largest axis divisible by `fsdp` on `fsdp`; small or indivisible leaves replicate."""
    if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % fsdp == 0:
            spec = [None] * len(shape)
            spec[axis] = "fsdp"
            return P(*spec)
    return P()


def param_shardings(tree: Any, mesh: Mesh, min_size: int = 2**14) -> Any:
    """NamedSharding per leaf of a params or optimizer-state tree (works on shape structs too)."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(
        lambda x: NamedSharding(mesh, leaf_spec(tuple(np.shape(x)), fsdp, min_size)), tree)


def _local_fraction(mesh: Mesh) -> int:
    local = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    if local == 0:
        raise ValueError(f"process {jax.process_index()} owns no device of the mesh")
    return mesh.devices.size // local


def host_batch_to_global(batch: Any, mesh: Mesh) -> Any:
    """This host's slice of the batch (leading dim) -> global arrays sharded on (data, fsdp).

    Every host passes the same local batch size; the global batch is local x (mesh devices /
    this host's mesh devices). Hosts never read each other's samples.
    """
    sharding = batch_sharding(mesh)
    factor = _local_fraction(mesh)

    def to_global(x):
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("batch leaves need a leading batch dimension")
        global_shape = (x.shape[0] * factor, *x.shape[1:])
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return jax.tree.map(to_global, batch)
