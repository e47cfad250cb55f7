"""Cache reading and validation, backends, mixtures and the host input pipeline.

npz        thread-safe `.npz` reads (npy header parsing is not thread-safe in CPython 3.11)
schema     the cache key/shape/dtype contract, `check_cache_file`, `load_cache`, `CacheError`
backends   `apply_backend`: which cached pools a shape exposes (mesh, pointcloud*, udfgrid, voxel)
grids      the [-1, 1]^3 voxel grid: bounds, ray entry/exit, cells, occupancy, centres, sampling
voxel      the voxel backend's occupancy, distance transform and vectorised ray walk
mixture    weighted corpora and the original's per-epoch sample order
records    one file -> padded fixed-size pools; header-only corpus scan
tfds_source  reading a TFDS (ArrayRecord) build of a cache root (`data_prep.to_tfds`)
sources    a component's shapes: `.npz` folder or TFDS build, one interface
staging    node-local copies of the corpora (`config.data.stage_dir`)
assemble   `BatchReader`: one process's batch at (epoch, step), picklable
workers    grain worker processes building batches (`config.data.loader=processes`)
pipeline   `InputPipeline`: per-process shards, prefetch, resumable `{"epoch", "step"}` state
"""
