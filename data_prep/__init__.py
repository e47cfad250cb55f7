"""Data preparation: per-shape caches from meshes and ScanObjectNN h5, CPAC split views,
FPS back-fill, a synthetic corpus, a cache validator and the TFDS (ArrayRecord) build.

Tools (each `python -m data_prep.<tool> --help`): meshes, scanobjectnn, unpaired_split,
add_fps_order, synthetic, validate, to_tfds.
"""
