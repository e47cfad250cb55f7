"""Tokenization throughput: our batched, jitted tokenizer vs the original's numpy build_sequence.

Two figures on the same pools: with pre-computed FPS orders (cache key `pt_fps_order`,
2048 long as the original's back-fill tool writes it) and with FPS computed on the fly.

  python bench/tokenize.py --preset runA --reference_src ref_src [--cache_root DIR]

Without --cache_root the pools are synthetic, of the preset's sizes. Both sides are timed in
interleaved rounds (one of our batches, then a share of the original's samples), and each
figure is the median call: ours one jitted batch of --batch, the original one sample. The last
line is
`tokenize_onthefly_fps ours=<samples/s> original=<samples/s> ratio=<ours/original>`.
"""

import os
import sys

# This file's name shadows the stdlib `tokenize` module (imported by linecache, logging,
# ...) when run as a script: drop the script's folder from the import path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import functools  # noqa: E402
import glob  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(_HERE))
from bench.machine import header  # noqa: E402
from bench.timing import interleaved  # noqa: E402
from nepa3d_jax import cli  # noqa: E402
from nepa3d_jax import tokenizer  # noqa: E402

PRESETS = {
    # pt pool, ray pool, tokenizer options (the run configs' data fields)
    "quick": dict(pt_pool=2000, ray_pool=800, opts=dict(
        n_point=128, n_ray=128, qa_tokens=True, qa_layout="interleave",
        pt_sample_mode="fps", point_order_mode="fps")),
    "runA": dict(pt_pool=20000, ray_pool=8000, opts=dict(
        n_point=1024, n_ray=1024, qa_tokens=True, qa_layout="interleave",
        pt_sample_mode="fps", point_order_mode="fps")),
    "runB": dict(pt_pool=20000, ray_pool=8000, opts=dict(
        n_point=1024, n_ray=0, qa_tokens=False, qa_layout="interleave",
        pt_sample_mode="fps", point_order_mode="morton")),
    "runD": dict(pt_pool=20000, ray_pool=8000, opts=dict(
        n_point=1024, n_ray=0, qa_tokens=True, qa_layout="interleave",
        pt_sample_mode="fps", point_order_mode="fps")),
}
FPS_K = 2048
RAY_FIELDS = ("ray_o", "ray_d", "ray_hit", "ray_t", "ray_n")


def synthetic_pools(n_shapes, pt_pool, ray_pool, seed=0):
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n_shapes):
        d = rng.normal(size=(ray_pool, 3)).astype(np.float32)
        out.append(dict(
            pt_xyz=rng.uniform(-1, 1, (pt_pool, 3)).astype(np.float32),
            pt_dist=rng.uniform(0, 1, (pt_pool,)).astype(np.float32),
            ray_o=rng.uniform(-1, 1, (ray_pool, 3)).astype(np.float32),
            ray_d=d / np.linalg.norm(d, axis=1, keepdims=True),
            ray_hit=(rng.uniform(size=ray_pool) > 0.5).astype(np.float32),
            ray_t=rng.uniform(0, 2, (ray_pool,)).astype(np.float32),
            ray_n=rng.normal(size=(ray_pool, 3)).astype(np.float32)))
    return out


def cache_pools(root, n_shapes, pt_pool, ray_pool):
    files = sorted(glob.glob(os.path.join(root, "**", "*.npz"), recursive=True))
    if not files:
        raise SystemExit(f"--cache_root {root}: no .npz files found")
    keys = dict(pt_xyz="pt_xyz_pool", pt_dist="pt_dist_pool", ray_o="ray_o_pool",
                ray_d="ray_d_pool", ray_hit="ray_hit_pool", ray_t="ray_t_pool",
                ray_n="ray_n_pool")
    out = []
    for i in range(n_shapes):
        with np.load(files[i % len(files)]) as z:
            s = {k: z[v] for k, v in keys.items()}
        if s["pt_xyz"].shape[0] != pt_pool or s["ray_o"].shape[0] != ray_pool:
            raise SystemExit(f"{files[i % len(files)]}: pools {s['pt_xyz'].shape[0]}/"
                             f"{s['ray_o'].shape[0]} differ from the preset's "
                             f"{pt_pool}/{ray_pool}")
        out.append(s)
    return out


def add_fps_orders(shapes):
    fps = jax.jit(tokenizer.fps_order, static_argnums=1)
    for s in shapes:
        k = min(FPS_K, s["pt_xyz"].shape[0])
        s["pt_fps_order"] = np.asarray(fps(s["pt_xyz"], k))


def ours_call(shapes, opts, batch, precomputed):
    """One call of our jitted tokenizer on a batch (fresh keys each call); compiled here."""
    stack = {k: np.stack([s[k] for s in shapes[:batch]]) for k in shapes[0]}
    if opts["n_ray"] == 0:
        stack = {k: v for k, v in stack.items() if k not in RAY_FIELDS}
    if not precomputed:
        stack.pop("pt_fps_order", None)
    else:
        stack["fps_count"] = np.full((batch,), stack["pt_fps_order"].shape[1], np.int32)
    stack["pt_count"] = np.full((batch,), stack["pt_xyz"].shape[1], np.int32)
    fn = jax.jit(functools.partial(tokenizer.build_batch, **opts))
    counter = iter(range(1 << 30))

    def one():
        keys = jax.random.split(jax.random.key(next(counter)), batch)
        jax.block_until_ready(fn(stack, keys))

    one()  # compile
    return one


def original_call(reference_src, shapes, opts, precomputed):
    """One call of the original's `build_sequence` on the next shape (one sample)."""
    sys.path.insert(0, os.path.abspath(reference_src))
    from nepa3d.token.tokenizer import build_sequence  # the original, numpy only

    rng = np.random.RandomState(0)
    counter = iter(range(1 << 30))

    def one():
        s = shapes[next(counter) % len(shapes)]
        rays = [s[k] if opts["n_ray"] else None for k in RAY_FIELDS]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_sequence(s["pt_xyz"], s["pt_dist"], *rays, rng=rng,
                           pt_fps_order=s["pt_fps_order"] if precomputed else None, **opts)

    return one


def main(argv=None):
    ap = cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="runA")
    ap.add_argument("--reference_src", default=None, help="checkout of the original")
    ap.add_argument("--cache_root", default=None, help="npz caches of the preset's sizes")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=30,
                    help="rounds, each one of our batches and a share of the original's "
                         "samples, timed in turn (medians are reported)")
    ap.add_argument("--original_samples", type=int, default=256,
                    help="samples the original tokenizes with pre-computed orders "
                         "(a sixteenth of that with FPS on the fly)")
    args = ap.parse_args(argv)
    print(header("tokenize"), flush=True)

    p = PRESETS[args.preset]
    if args.cache_root:
        shapes = cache_pools(args.cache_root, args.batch, p["pt_pool"], p["ray_pool"])
    else:
        shapes = synthetic_pools(args.batch, p["pt_pool"], p["ray_pool"])
    add_fps_orders(shapes)
    print(f"preset={args.preset} opts={p['opts']} pools pt={p['pt_pool']} ray={p['ray_pool']} "
          f"batch={args.batch} device={jax.devices()[0].device_kind} "
          f"backend={jax.default_backend()}")

    lines = []
    for label, precomputed in (("tokenize_precomputed_fps", True),
                               ("tokenize_onthefly_fps", False)):
        fns = {"ours": ours_call(shapes, p["opts"], args.batch, precomputed)}
        rounds, calls = args.repeats, {}
        if args.reference_src:
            fns["original"] = original_call(args.reference_src, shapes, p["opts"], precomputed)
            # one of our batches and n/rounds original samples per round (median call each)
            n = args.original_samples if precomputed else max(args.original_samples // 16, 2)
            rounds = min(args.repeats, n)
            calls["original"] = max(1, n // rounds)
        seconds = interleaved(fns, rounds, calls)
        ours = args.batch / seconds["ours"]
        orig = 1.0 / seconds["original"] if "original" in seconds else float("nan")
        lines.append(f"{label} samples/s ours={ours:.1f} original={orig:.1f} "
                     f"ratio={ours / orig:.2f}")
        print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
