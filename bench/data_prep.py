"""Data-prep throughput: our `data_prep.meshes` vs the original's `preprocess_modelnet40`.

Same meshes (procedural ones written to a temp folder in the ModelNet layout, or
--mesh_root), same profile, same worker count, both run as subprocesses in this run; the
figure is shapes per second of wall time including process start-up.

  python bench/data_prep.py --reference_src ref_src [--preset runA] [--workers 2]

Presets: `quick` = small profile (pc 512, pt pool 2048, ray pool 512), 14 shapes; `runA`,
`runB`, `runD` = the original's default profile (pc 2048, pt pool 20000, ray pool 8000,
UDF 64^3), which every run's caches use, 20 shapes. Last line:
`data_prep shapes/s ours=<x> original=<y> ratio=<x/y>`.
"""

import os
import sys

# Run as a script, this folder is first on sys.path: its `data_prep.py` would shadow the
# `data_prep` package and `tokenize.py` the stdlib module. Drop it, add the repo root.
_HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(_HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, REPO)

import glob  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.machine import header  # noqa: E402
from data_prep import shapes  # noqa: E402
from data_prep.profile import SMALL, Profile  # noqa: E402
from data_prep.runner import shape_rng  # noqa: E402
from nepa3d_jax import cli  # noqa: E402

PRESETS = {"quick": (SMALL, 14), "runA": (Profile(), 20), "runB": (Profile(), 20),
           "runD": (Profile(), 20)}
FLAGS = ("pc_points", "pt_pool", "ray_pool", "n_views", "rays_per_view", "pc_grid",
         "pc_dilate", "df_grid", "df_dilate")


def write_meshes(root: str, n: int, seed: int = 0) -> None:
    for i in range(n):
        fam = shapes.FAMILIES[i % len(shapes.FAMILIES)]
        mesh = shapes.make_shape(fam, shape_rng(seed, f"bench/{i}"))
        os.makedirs(os.path.join(root, fam, "train"), exist_ok=True)
        mesh.export(os.path.join(root, fam, "train", f"{fam}_{i:04d}.off"))


def profile_flags(p: Profile) -> list[str]:
    return [x for f in FLAGS for x in (f"--{f}", str(getattr(p, f)))]


def timed(cmd: list[str], env: dict, out_root: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    return dt, len(glob.glob(os.path.join(out_root, "train", "*", "*.npz")))


def main() -> None:
    ap = cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="runA")
    ap.add_argument("--reference_src", default=None, help="checkout of the original")
    ap.add_argument("--mesh_root", default=None, help="ModelNet-layout meshes (train split)")
    ap.add_argument("--n_shapes", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(header("data_prep"), flush=True)
    profile, n = PRESETS[args.preset]
    n = args.n_shapes or n
    with tempfile.TemporaryDirectory() as tmp:
        root = args.mesh_root or os.path.join(tmp, "meshes")
        if args.mesh_root is None:
            write_meshes(root, n)
        n_in = len(glob.glob(os.path.join(root, "*", "train", "*.off")))
        print(f"preset={args.preset} meshes={n_in} ({root}) workers={args.workers} "
              f"profile: {' '.join(profile_flags(profile))}")
        common = ["--split", "train", "--workers", str(args.workers), "--seed", "0",
                  *profile_flags(profile)]
        env = dict(os.environ, PYTHONPATH=REPO)
        ours_out = os.path.join(tmp, "ours")
        dt, k = timed([sys.executable, "-m", "data_prep.meshes", "--root", root,
                       "--out_root", ours_out, *common], env, ours_out)
        ours = k / dt
        print(f"ours: {k} caches in {dt:.2f}s = {ours:.3f} shapes/s")
        orig = float("nan")
        if args.reference_src:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(args.reference_src))
            ref_out = os.path.join(tmp, "original")
            dt, k = timed([sys.executable, "-m", "nepa3d.data.preprocess_modelnet40",
                           "--modelnet_root", root, "--out_root", ref_out, *common], env, ref_out)
            orig = k / dt
            print(f"original: {k} caches in {dt:.2f}s = {orig:.3f} shapes/s")
    print(f"data_prep shapes/s ours={ours:.3f} original={orig:.3f} ratio={ours / orig:.2f}")


if __name__ == "__main__":
    main()
