"""THROWAWAY demo evaluator: counts the cache files of a split (shows the registry's one place)."""

import glob
import os

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(job="count_shapes", ckpt="", out_json="",
                                          cache_root="data/demo/cache", split="train"))


def run(config: ml_collections.ConfigDict) -> dict:
    files = glob.glob(os.path.join(config.cache_root, config.split, "*", "*.npz"))
    return {"n_shapes": len(files), "ckpt": config.ckpt}
