"""Thread-safe `.npz` reads (nepa3d_jax.data.npz).

CI once failed with `SystemError: AST constructor recursion depth mismatch` when the input
pipeline's threads parsed npy headers at the same time (CPython 3.11). The race test below
shows the bare numpy parse failing under the same load that ours survives.
"""

import io
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

from nepa3d_jax.data import npz


class _CyclicWithFinaliser:
    """Garbage whose collection runs Python code: a GIL switch inside a header parse."""

    def __init__(self):
        self.me = self

    def __del__(self):
        sum(range(50))


def _hammer(parse, header: bytes, *, threads: int = 4, seconds: float, stop_on_error: bool):
    errors, count = [], [0]

    def worker():
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds and not (stop_on_error and errors):
            try:
                shape, fortran, dtype = parse(io.BytesIO(header))
                assert shape == (20000, 3) and not fortran and dtype == np.float32
                count[0] += 1
            except SystemError as e:
                errors.append(e)
            for _ in range(10):
                _CyclicWithFinaliser()

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors, count[0]


def _bare_numpy(f):
    np.lib.format.read_magic(f)
    return np.lib.format.read_array_header_1_0(f)


def test_header_parse_survives_threads_where_bare_numpy_fails():
    buf = io.BytesIO()
    np.save(buf, np.zeros((20000, 3), np.float32))
    header = buf.getvalue()[:128]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # GIL switches as often as possible: the race shows in ~0.1 s
    try:
        if sys.version_info[:2] == (3, 11):  # the harness must be able to see the bug
            errors, _ = _hammer(_bare_numpy, header, seconds=20.0, stop_on_error=True)
            assert errors and "recursion depth mismatch" in str(errors[0])
        errors, n = _hammer(npz.read_header, header, seconds=2.0, stop_on_error=False)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
    assert n > 1000


def test_npz_reads_what_numpy_reads(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(pt_xyz_pool=rng.random((300, 3), dtype=np.float32),
                  pc_fps_order=rng.permutation(300).astype(np.int32),
                  ray_hit_pool=(rng.random(40) > 0.5).astype(np.uint8),
                  fortran=np.asfortranarray(rng.random((5, 7))), scalar=np.float32(2.5))
    p = tmp_path / "a.npz"
    np.savez_compressed(p, **arrays)
    with npz.Npz(p) as z, np.load(p) as ref:
        assert sorted(z.files) == sorted(arrays) and len(z) == len(arrays)
        assert "pt_xyz_pool" in z and "nope" not in z
        for k in arrays:
            a = z[k]
            assert a.dtype == ref[k].dtype and a.shape == ref[k].shape
            np.testing.assert_array_equal(a, ref[k])
            a[...] = 0  # writable, like numpy's own reader
        with pytest.raises(KeyError, match="nope"):
            z["nope"]


def test_npz_rejects_bare_npy_and_truncated_files(tmp_path):
    p = tmp_path / "one.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        npz.Npz(p)
    q = tmp_path / "short.npz"
    np.savez(q, a=np.zeros(1000))
    q.write_bytes(q.read_bytes()[:100])
    with pytest.raises((zipfile.BadZipFile, OSError, EOFError, ValueError)):  # what callers catch
        npz.Npz(q)


def test_package_reads_npz_only_through_the_locked_reader():
    """A bare `np.load` on a loader thread would bring the race back."""
    import pathlib

    import nepa3d_jax
    root = pathlib.Path(nepa3d_jax.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "npz.py" and ("np.load(" in p.read_text()
                                            or "read_array_header" in p.read_text())]
    assert not offenders, offenders
