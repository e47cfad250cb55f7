"""The token-sequence picture: a headless PNG of the stated size from a real cache file."""

import struct
import subprocess
import sys

import pytest

from nepa3d_jax.eval import render


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_token_orders_differ_and_the_cli_writes_the_png(reference_dir, tmp_path):
    cache = sorted((reference_dir / "cache").glob("*/*/*.npz"))[0]
    pts = {o: render.token_points(str(cache), o, 32, 8)["points"] for o in render.ORDERS}
    assert all(p.shape == (32, 3) for p in pts.values())
    # Same FPS subset, different sequence order.
    key = lambda p: sorted(map(tuple, p.round(5)))
    assert key(pts["morton"]) == key(pts["fps"])
    assert (pts["morton"] != pts["fps"]).any() and (pts["random"] != pts["fps"]).any()
    out = tmp_path / "tokens.png"
    proc = subprocess.run([sys.executable, "-m", "nepa3d_jax.eval.render", "tokens", "--cache",
                           str(cache), "--out", str(out), "--n_point", "32", "--n-ray", "8"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    png = out.read_bytes()
    # three panels and a band below for the legend and the colour bar
    assert _size(png) == (3 * render.PANEL_PX, render.PANEL_PX + 90) and len(png) > 10000


def test_missing_cache_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nepa3d_jax.eval.render", "tokens", "--cache",
                           str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nope.npz" in proc.stderr
    assert not (tmp_path / "x.png").exists()
