"""Host input pipeline throughput (no model): samples/s of `InputPipeline` per corpus form.

  python bench/input_pipeline.py --preset runA --reference-src ref_src [--corpus DIR]

On a corpus built by `data_prep.synthetic` with the original's default profile (pt_pool 20000,
ray_pool 8000, 64^3 grids; >= --shapes training shapes per cache root; pt_fps_order back-filled
by `data_prep.add_fps_order`, as the plan's runs have it), times the preset's mixture for:
`.npz` zlib-compressed (the original's format), `.npz` uncompressed (`--compress none`) and the
TFDS build (`data_prep.to_tfds`), on the thread loader and on grain worker processes, with 1
and 2 workers. Each figure is --batches batches of 16 after a warm-up of workers x 5 + 1
batches (worker start-up and the first use of their shared-memory slots excluded); with --repeats N, the median of N rounds over all cases.
With --reference-src, the original's `Dataset.__getitem__` through its `DataLoader` (1 and 2
worker processes, its collate) on the same shapes and index stream; note it also tokenizes
(FPS order prefix, ray subset, sequence assembly), which we do on the accelerator. The last
line is `input samples/s ours=<tfds, 2 worker processes> original=<original, 2 workers>
ratio=<ours/original>`. Also prints the samples/s a GPU consumes at a stated MFU.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

# bench/tokenize.py shadows the stdlib module when this folder is on the path: drop it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import ml_collections  # noqa: E402

from bench.machine import header  # noqa: E402
from data_prep import to_tfds  # noqa: E402
from data_prep.atomic import atomic_savez  # noqa: E402
from nepa3d_jax import cli  # noqa: E402
from nepa3d_jax.config.loading import fill_defaults  # noqa: E402
from nepa3d_jax.data import schema  # noqa: E402
from nepa3d_jax.data import loader_workers  # noqa: E402
from nepa3d_jax.data.pipeline import InputPipeline  # noqa: E402

PRESETS = {  # mixture (name, cache folder, backend, weight) and token counts of configs/runX.py
    "runA": dict(mix=[("shapenet_mesh", "cache", "mesh", 0.34),
                      ("shapenet_udf", "cache", "udfgrid", 0.33),
                      ("scan_noray", "scan_cache", "pointcloud_noray", 0.33)],
                 n_point=1024, n_ray=1024, qa_tokens=1, data=dict()),
    "runB": dict(mix=[("shapenet_pc", "cache", "pointcloud_noray", 0.5),
                      ("scan_noray", "scan_cache", "pointcloud_noray", 0.5)],
                 n_point=1024, n_ray=0, qa_tokens=0,
                 data=dict(pt_xyz_key="pc_xyz", ablate_point_dist=1)),
}
PROFILE = ["--pc_points", "2048", "--pt_pool", "20000", "--ray_pool", "8000", "--n_views", "20",
           "--rays_per_view", "400", "--pc_grid", "64", "--df_grid", "64"]
MODEL = dict(d_model=384, layers=8)  # configs/base.py
PREFETCH = 2  # config.data.prefetch of configs/base.py
H100_BF16 = 989e12


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=dict(os.environ, PYTHONPATH=os.path.dirname(_HERE)))


def prepare(corpus, shapes, workers):
    """The synthetic corpus (zlib), its uncompressed copy and its TFDS build (each made once)."""
    per_class = -(-shapes * 4 // (3 * 7)) + 1  # 7 classes, 1/4 of each class is test
    if not os.path.isdir(os.path.join(corpus, "scan_cache")):
        run([sys.executable, "-m", "data_prep.synthetic", "--out", corpus, "--n_per_class",
             str(per_class), "--workers", str(workers), *PROFILE])
    forms = {"npz_zlib": corpus, "npz_raw": corpus + "_raw", "tfds": corpus + "_tfds"}
    for sub in ("cache", "scan_cache"):
        root = os.path.join(corpus, sub)
        files = schema.list_cache_files(root, "train")
        if "pt_fps_order" not in schema.read_headers(files[0]):
            run([sys.executable, "-m", "data_prep.add_fps_order", "--cache_root", root,
                 "--splits", "train", "--workers", str(workers)])
        for f in files:  # the --compress none form of the same arrays
            out = os.path.join(forms["npz_raw"], sub, os.path.relpath(f, root))
            if not os.path.exists(out):
                atomic_savez(out, schema.load_cache(f, list(schema.read_headers(f))),
                             compressed=False)
        to_tfds.build(root, os.path.join(forms["tfds"], sub), ["train"], workers)
    return forms


def data_cfg(preset, base, loader, workers, n_samples):
    p = PRESETS[preset]
    mix = {name: dict(cache_root=os.path.join(base, sub), split="train", backend=b, weight=w)
           for name, sub, b, w in p["mix"]}
    c = dict(mix=mix, mix_config="", mix_num_samples=n_samples, mix_seed=0, replacement=True,
             pt_xyz_key="pt_xyz_pool", pt_dist_key="pt_dist_pool", pt_fps_key="auto",
             ablate_point_dist=0, force_missing_ray=False, pt_pool_pad=0, ray_pool_pad=0,
             validate="header", prefetch=PREFETCH, loader=loader, workers=workers)
    c.update(p["data"])
    return fill_defaults(ml_collections.ConfigDict(dict(data=c))).data  # the rest: the defaults


def time_ours(preset, base, loader, workers, batch, batches):
    # Steady state: every worker process has started and has written each of its reused
    # shared-memory slots once (`loader_workers.slots_per_worker`; their first use
    # page-faults fresh memory, a one-time cost like the start-up).
    warm = workers * loader_workers.slots_per_worker(PREFETCH) + 1
    pipe = InputPipeline(data_cfg(preset, base, loader, workers, batch * (batches + warm)),
                         batch, process_index=0, process_count=1)
    try:
        for _ in range(warm):
            next(pipe)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(pipe)
        return batch * batches / (time.perf_counter() - t0)
    finally:
        pipe.close()


def cpu_rate(preset, base, batch, batches):
    """Samples per CPU-second on one thread (process CPU time, so other load on a shared machine
    does not count): the per-core cost of reading, backend, padding and stacking."""
    pipe = InputPipeline(data_cfg(preset, base, "threads", 1, batch * (batches + 1)), batch,
                         process_index=0, process_count=1, prefetch=0)
    try:
        pipe.batch_at(0, 0)
        t0 = time.process_time()
        for step in range(1, batches + 1):
            pipe.batch_at(0, step)
        return batch * batches / (time.process_time() - t0)
    finally:
        pipe.close()


def time_original(reference_src, preset, base, workers, batch, batches, workdir):
    """The original's DataLoader over its mixed dataset, same caches, index stream of seed 0."""
    sys.path.insert(0, os.path.abspath(reference_src))
    import torch
    from torch.utils.data import DataLoader

    from nepa3d.data.dataset import collate
    from nepa3d.data.mixed_pretrain import build_mixed_pretrain

    p = PRESETS[preset]
    yaml_path = os.path.join(workdir, f"mix_{preset}.yaml")
    with open(yaml_path, "w") as f:
        f.write(f"mix_num_samples: {batch * (batches + 1)}\nmix_seed: 0\nreplacement: true\n"
                "datasets:\n")
        for name, sub, b, w in p["mix"]:
            f.write(f"  - name: {name}\n    cache_root: {os.path.join(base, sub)}\n"
                    f"    split: train\n    backend: {b}\n    weight: {w}\n")
    kw = dict(pt_xyz_key=p["data"].get("pt_xyz_key", "pt_xyz_pool"),
              ablate_point_dist=bool(p["data"].get("ablate_point_dist", 0)))
    ds, sampler, _ = build_mixed_pretrain(
        yaml_path, n_point=p["n_point"], n_ray=p["n_ray"], qa_tokens=bool(p["qa_tokens"]),
        mode="train", pt_sample_mode="fps", pt_fps_key="auto",
        point_order_mode="morton" if preset == "runB" else "fps", **kw)
    torch.manual_seed(0)
    dl = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                    collate_fn=collate, prefetch_factor=2)
    it = iter(dl)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batch * batches / (time.perf_counter() - t0)
    del it
    return rate


def gpu_need(preset, mfu):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_train_step",
                                                  os.path.join(_HERE, "train_step.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    flops_per_step = mod.flops_per_step  # one owner of the FLOP count

    p = PRESETS[preset]
    t = 1 + (2 if p["qa_tokens"] else 1) * (p["n_point"] + p["n_ray"]) + 1
    d, layers = MODEL["d_model"], MODEL["layers"]
    n_params = layers * 12 * d * d + 2 * d * d  # blocks + token MLP + head (embeddings aside)
    per_sample = flops_per_step(n_params, layers, d, 1, t)
    return t, per_sample / t, mfu * H100_BF16 / per_sample


def main(argv=None):
    ap = cli.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="runA")
    ap.add_argument("--reference-src", default=None, help="checkout of the original")
    ap.add_argument("--corpus", default="data/bench_input",
                    help="synthetic corpus folder (built when missing)")
    ap.add_argument("--shapes", type=int, default=200, help="training shapes per cache root")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=24, help="timed batches per figure")
    ap.add_argument("--prep-workers", type=int, default=2)
    ap.add_argument("--mfu", type=float, default=0.4)
    ap.add_argument("--cpu-only", action="store_true", help="only the per-core CPU figures")
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds over all loader cases; each figure is the median")
    args = ap.parse_args(argv)
    print(header("input_pipeline"), flush=True)

    forms = prepare(args.corpus, args.shapes, args.prep_workers)
    n = len(schema.list_cache_files(os.path.join(args.corpus, "cache"), "train"))
    t, fpt, need = gpu_need(args.preset, args.mfu)
    print(f"preset={args.preset} shapes={n} per root, batch={args.batch}, cpus={os.cpu_count()}; "
          f"a GPU at {args.mfu:.0%} MFU (H100 bf16) consumes {need:.0f} samples/s "
          f"(T={t}, {fpt / 1e6:.0f} MFLOP/token fwd+bwd)", flush=True)
    cpu = {form: cpu_rate(args.preset, base, args.batch, args.batches)
           for form, base in forms.items()}
    for form, rate in cpu.items():
        print(f"ours {form:8s} per core, default malloc: {rate:7.1f} samples per CPU-second "
              f"({1e3 / rate:.2f} ms CPU per sample; {rate / cpu['npz_zlib']:.2f}x npz_zlib)",
              flush=True)
    pid = os.fork()  # the loader workers' malloc setting, in a child so this process keeps its own
    if pid == 0:
        loader_workers.tune_malloc()
        for form, base in forms.items():
            rate = cpu_rate(args.preset, base, args.batch, args.batches)
            print(f"ours {form:8s} per core, worker malloc:  {rate:7.1f} samples per CPU-second "
                  f"({1e3 / rate:.2f} ms CPU per sample; {rate / cpu['npz_zlib']:.2f}x "
                  "npz_zlib thread path)", flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    if args.cpu_only:
        return
    ours = {}
    cases = [(form, loader, w) for form in forms for loader in ("threads", "processes")
             for w in (1, 2)]
    runs: dict[tuple, list[float]] = {c: [] for c in cases}
    for _ in range(args.repeats):  # rounds over every case: slow drifts of a shared VM spread
        for form, loader, w in cases:
            runs[form, loader, w].append(
                time_ours(args.preset, forms[form], loader, w, args.batch, args.batches))
    for (form, loader, w), rates in runs.items():
        rate = ours[form, loader, w] = statistics.median(rates)
        spread = f" (min {min(rates):.1f}, max {max(rates):.1f} of {len(rates)})" \
            if len(rates) > 1 else ""
        print(f"ours {form:8s} {loader:9s} workers={w}: {rate:7.1f} samples/s "
              f"({rate / w:.1f} per worker){spread}", flush=True)
    base_rate = ours["npz_zlib", "threads", 1]
    best = ours["tfds", "processes", 2]
    print(f"tfds processes x2 vs npz_zlib threads x1: {best / base_rate:.2f}x; "
          f"scaling tfds processes 2/1: {best / ours['tfds', 'processes', 1]:.2f}x")
    orig = {1: float("nan"), 2: float("nan")}
    if args.reference_src:
        work = os.path.join(args.corpus + "_orig_yaml")
        os.makedirs(work, exist_ok=True)
        for w in (1, 2):
            orig[w] = statistics.median(
                time_original(args.reference_src, args.preset, forms["npz_zlib"], w,
                              args.batch, args.batches, work) for _ in range(args.repeats))
            print(f"original npz_zlib DataLoader workers={w}: {orig[w]:7.1f} samples/s "
                  "(includes its tokenization)", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"input samples/s ours={best:.1f} original={orig[2]:.1f} ratio={best / orig[2]:.2f}")


if __name__ == "__main__":
    main()
