"""Multi-host smoke test: `python -m nepa3d_jax.parallel.selftest [--config F ...]`.

Run it through `launch/pretrain_multinode.sh` (qsub -v MODULE=nepa3d_jax.parallel.selftest) before
a long job: every process joins, builds the mesh, feeds only its own shard of a known batch and
all-reduces it over `data`. Prints one `SELFTEST {json}` line per process; exits 1 on a wrong sum.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

import numpy as np

from nepa3d_jax import cli


def global_batch_values(num_devices: int, width: int = 3) -> np.ndarray:
    """A (2 * num_devices, width) batch every process can rebuild; rows are distinct."""
    return np.arange(2 * num_devices * width, dtype=np.float32).reshape(2 * num_devices, width)


def run_psum(mesh) -> np.ndarray:
    """Sum over `data` of the per-device slices, computed with shard_map + psum."""
    import jax
    from jax.sharding import PartitionSpec as P

    from nepa3d_jax.parallel.mesh import BATCH_SPEC, host_batch_to_global

    full = global_batch_values(mesh.devices.size)
    rows_per_process = full.shape[0] // jax.process_count()
    start = jax.process_index() * rows_per_process
    batch = host_batch_to_global({"x": full[start:start + rows_per_process]}, mesh)

    @jax.jit
    def reduce(x):
        summed = jax.shard_map(lambda v: jax.lax.psum(v.sum(0), ("data", "fsdp")), mesh=mesh,
                               in_specs=BATCH_SPEC, out_specs=P())(x)
        return summed

    out = reduce(batch["x"])
    return np.asarray(out.addressable_shards[0].data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m nepa3d_jax.parallel.selftest", description=__doc__)
    parser.add_argument("--config", default=None,
                        help="a config from configs/ (its parallel.fsdp shapes the mesh)")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    config = None
    if args.config:  # before any device work: a bad file is one line, on every process
        from nepa3d_jax.config import load_config
        try:
            config = load_config(args.config, overrides)
        except ValueError as err:
            print(f"selftest: error: {str(err).splitlines()[0]}", file=sys.stderr)
            return 2

    from nepa3d_jax.parallel.startup import initialize
    info = initialize()
    import jax

    from nepa3d_jax.parallel.mesh import make_mesh
    mesh = make_mesh(config)
    got = run_psum(mesh)
    want = global_batch_values(mesh.devices.size).sum(0)
    ok = bool(np.array_equal(got, want))
    print("SELFTEST " + json.dumps(dict(
        process_id=jax.process_index(), num_processes=jax.process_count(), source=info.source,
        coordinator=info.coordinator, global_devices=jax.device_count(),
        local_devices=jax.local_device_count(), mesh=dict(mesh.shape), psum=got.tolist(), ok=ok)),
        flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
