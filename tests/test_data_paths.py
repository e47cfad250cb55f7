"""One owner each: labels and seeds from a cache path, and the padding rule (never truncate)."""

import numpy as np
import pytest

from nepa3d_jax.data import paths, records
from nepa3d_jax.eval.cls import data as cls_data


def test_label_and_seed_from_path():
    path = "unpaired/eval/box/box_0_test_000.npz"
    assert paths.label_from_path(path) == "box"
    assert paths.class_label(path, ("ball", "box")) == 1
    assert paths.path_seed(path, 999) == 690021620 + 999  # the original's md5 rule
    assert paths.path_seed("a/b/c.npz", 2**32 - 2294557946) == 0  # wraps at 2**32


def test_pad_rows_pads_and_refuses_to_truncate():
    out = records.pad_rows(np.ones((2, 3), np.float64), 4, np.float32, "point pool")
    assert out.dtype == np.float32 and out.tolist() == [[1, 1, 1]] * 2 + [[0, 0, 0]] * 2
    with pytest.raises(ValueError, match=r"^x.npz: ray pool has 5 entries, more than the pad "
                                         r"size 4 \(raise"):
        records.pad_rows(np.zeros((5, 3)), 4, np.float32, "ray pool", "x.npz", records._PAD_HINT)


def test_classification_padding_uses_the_same_rule():
    sample = dict(pt_xyz=np.ones((3, 3)), pt_dist=np.ones(3), pt_fps_order=np.arange(3),
                  ray_o=np.zeros((2, 3)), ray_d=np.zeros((2, 3)), ray_n=np.zeros((2, 3)),
                  ray_hit=np.zeros(2), ray_t=np.zeros(2), ray_available=True)
    arrays = cls_data.stack_samples([sample], pt_pad=4, fps_pad=2, ray_pad=2)
    assert arrays["pt_fps_order"].tolist() == [[0, 1]] and arrays["fps_count"].tolist() == [2]
    assert arrays["pt_count"].tolist() == [3] and arrays["pt_xyz"].shape == (1, 4, 3)
    with pytest.raises(ValueError, match="point pool has 3 entries, more than the pad size 2"):
        cls_data.stack_samples([sample], pt_pad=2, fps_pad=2, ray_pad=2)
