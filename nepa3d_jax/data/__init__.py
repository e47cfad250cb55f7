"""Cache reading and validation, backends, mixtures and the host input pipeline.

npz        thread-safe `.npz` reads (npy header parsing is not thread-safe in CPython 3.11)
schema     the cache key/shape/dtype contract, `check_cache_file`, `load_cache`, `CacheError`
backends   `apply_backend`: which cached pools a shape exposes (mesh, pointcloud*, udfgrid, voxel)
voxel      the voxel backend's occupancy, distance transform and vectorised ray walk
mixture    weighted corpora and the original's per-epoch sample order
records    one file -> padded fixed-size pools; header-only corpus scan
pipeline   `InputPipeline`: per-process shards, prefetch, resumable `{"epoch", "step"}` state
"""
