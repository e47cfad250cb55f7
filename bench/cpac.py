"""Seconds for CPAC-UDF on N shapes: ours vs the original, same flags, same caches, one run.

  python bench/cpac.py --preset quick [--reference_src ref_src]
  python bench/cpac.py --preset runA --n_shapes 3 [--reference_src ref_src]

Presets:
  quick  the reference folder's CPAC view and `ckpt/tiny_qa/last.pt`, 32 context / 32 queries,
         all 5 eval + 10 head-training shapes (the golden's settings).
  runA   the seed protocol's sizes (1024 context / 1024 queries, 4098-token sequences) with a
         runA-sized model (d 384, 8 layers, 6 heads, Q/A interleave) of random weights written
         as an original `.pt` in a temporary directory; N eval + N head-training shapes of the
         reference caches. runB / runD: the same (CPAC's cost does not depend on the run).
Both sides run as fresh processes (`python -m nepa3d_jax.main ...` and
`python -m nepa3d.analysis.completion_cpac_udf ...`) from the same working directory, timed
wall-clock, so imports, checkpoint loading and compilation count for both. The metrics of the
two runs are printed side by side as a parity check.

Like for like: the original scores the checkpoint alone, so `ours` here runs with the
random-init baseline off (`random_init_baseline=0`); the default configuration (the arm on, a
second forward over every shape) is timed after it and printed on its own
`cpac_default_seconds` line (`--skip_default` leaves it out). Our runs use no persistent
compilation cache, so both sides pay their compilation in every run.

Last line: `cpac_seconds ours=<s> original=<s> ratio=<original/ours>`: for seconds the ratio is
original over ours, so > 1 means we are faster (nan without --reference_src).
"""

from __future__ import annotations

import os
import sys

# `python bench/cpac.py` puts bench/ first on sys.path, where a sibling module may shadow the
# standard library (bench/tokenize.py shadows `tokenize`); drop it.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import json  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench.machine import header  # noqa: E402
from nepa3d_jax import cli  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = pathlib.Path(os.environ.get("NEPA3D_REFERENCE", REPO.parent / "shared" / "reference"))


def make_view(reference: pathlib.Path, dst: pathlib.Path) -> None:
    """`unpaired/` of the reference folder with real symlinks (its own may be flattened)."""
    for f in sorted((reference / "unpaired").glob("*/*/*.npz")):
        target = f.resolve() if f.is_symlink() else (f.parent / f.read_text().strip()).resolve()
        out = dst / f.relative_to(reference)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, out)


def write_random_checkpoint(path: pathlib.Path, d: int = 384, layers: int = 8, heads: int = 6,
                            max_len: int = 4098, seed: int = 0) -> None:
    """An original-format Q/A checkpoint (state-dict names of the original) of random weights."""
    import torch

    rng = np.random.RandomState(seed)

    def t(*shape, std=0.05, base=0.0):
        return torch.from_numpy((base + std * rng.randn(*shape)).astype(np.float32))

    sd = {"pos_emb": t(1, max_len, d, std=0.02), "type_emb.weight": t(9, d, std=0.5),
          "token_mlp.0.weight": t(d, 15, std=0.5), "token_mlp.0.bias": t(d),
          "token_mlp.2.weight": t(d, d), "token_mlp.2.bias": t(d)}
    for i in range(layers):
        p = f"backbone.enc.layers.{i}."
        sd.update({p + "self_attn.in_proj_weight": t(3 * d, d),
                   p + "self_attn.in_proj_bias": t(3 * d),
                   p + "self_attn.out_proj.weight": t(d, d), p + "self_attn.out_proj.bias": t(d),
                   p + "linear1.weight": t(4 * d, d), p + "linear1.bias": t(4 * d),
                   p + "linear2.weight": t(d, 4 * d), p + "linear2.bias": t(d),
                   p + "norm1.weight": t(d, std=0.1, base=1.0), p + "norm1.bias": t(d),
                   p + "norm2.weight": t(d, std=0.1, base=1.0), p + "norm2.bias": t(d)})
    sd["pred_head.weight"], sd["pred_head.bias"] = t(d, d), t(d)
    args = dict(d_model=d, layers=layers, heads=heads, max_len=max_len, qa_tokens=1,
                qa_layout="interleave", add_eos=1, arch="causal", n_point=1024, n_ray=1024)
    torch.save({"model": sd, "args": args, "epoch": 0, "step": 0}, str(path))


def _flags(preset: str, n_shapes: int) -> dict:
    common = dict(cache_root="unpaired", split="eval", context_backend="pointcloud_noray",
                  head_train_split="train_udf", head_train_backend="udfgrid", ridge_lambda=1e-3,
                  tau=0.03, eval_seed=0, disjoint_context_query=1, rep_source="h",
                  query_source="pool", baseline="nn_copy")
    if preset == "quick":
        return dict(common, n_context=32, n_query=32, max_shapes=0, head_train_max_shapes=0)
    return dict(common, n_context=1024, n_query=1024, max_shapes=n_shapes,
                head_train_max_shapes=n_shapes)


def _timed(cmd: list[str], cwd: pathlib.Path, env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd[:4])} ...")
    return dt


def run_ours(flags: dict, ckpt: str, out_json: pathlib.Path, cwd: pathlib.Path,
             batch_size: int, random_init_baseline: int) -> float:
    """Seconds of one `nepa3d-jax` CPAC process (compilation included, no persistent cache:
    both sides pay their start-up in every run)."""
    cmd = [sys.executable, "-m", "nepa3d_jax.main", f"--config={REPO / 'configs' / 'cpac_udf.py'}",
           "--compilation_cache=off",
           f"--config.ckpt={ckpt}", f"--config.out_json={out_json}", "--config.progress=False",
           f"--config.batch_size={batch_size}",
           f"--config.random_init_baseline={random_init_baseline}"]
    cmd += [f"--config.{k}={v}" for k, v in flags.items()]
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    return _timed(cmd, cwd, env)


def run_original(src: pathlib.Path, flags: dict, ckpt: str, out_json: pathlib.Path,
                 cwd: pathlib.Path) -> float:
    cmd = [sys.executable, "-m", "nepa3d.analysis.completion_cpac_udf", "--ckpt", ckpt,
           "--out_json", str(out_json)]
    for k, v in flags.items():
        cmd += [f"--{k}", str(v)]
    env = dict(os.environ, PYTHONPATH=str(src.resolve()))
    return _timed(cmd, cwd, env)


def main() -> None:
    ap = cli.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference_src", default="", help="checkout of the original (e.g. ref_src)")
    ap.add_argument("--preset", choices=("quick", "runA", "runB", "runD"), default="quick")
    ap.add_argument("--n_shapes", type=int, default=3,
                    help="runA: eval shapes and head-training shapes each (reference has 5 / 10)")
    ap.add_argument("--batch_size", type=int, default=0,
                    help="ours: shapes per call (0: the config default, one per CPU device)")
    ap.add_argument("--skip_default", action="store_true",
                    help="leave out the run of the default configuration (random-init arm on)")
    ap.add_argument("--cache_root", default="",
                    help="runA: a CPAC split view (<root>/{eval,train_udf}/<class>/*.npz) to use "
                         "instead of the reference folder's; both sides run from its parent")
    args = ap.parse_args()
    print(header("cpac"), flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_cpac_") as tmp:
        work = pathlib.Path(tmp)
        cwd = work
        if args.cache_root and args.preset != "quick":
            root = pathlib.Path(args.cache_root).resolve()
            cwd = root.parent
        else:
            make_view(REFERENCE, work)
        if args.preset == "quick":
            ckpt = str(REFERENCE / "ckpt" / "tiny_qa" / "last.pt")
        else:
            ckpt = str(work / "runA_random.pt")
            write_random_checkpoint(pathlib.Path(ckpt))
        flags = _flags(args.preset, args.n_shapes)
        if cwd != work:
            flags["cache_root"] = pathlib.Path(args.cache_root).resolve().name
        # Like for like: the original scores the checkpoint alone, so the ratio runs ours with
        # the random-init arm off; the default configuration's cost (with the arm: a second
        # forward over every shape) is its own line.
        ours_s = run_ours(flags, ckpt, work / "ours.json", cwd, args.batch_size, 0)
        ours = json.loads((work / "ours.json").read_text())
        n = ours["timing"]["shapes"]
        print(f"preset={args.preset} shapes={n} (eval {ours['n_shapes_head_test']} + head-train "
              f"{ours['n_shapes_head_train']}) n_context={flags['n_context']} "
              f"n_query={flags['n_query']}")
        print(f"ours:     {ours_s:8.2f} s wall, random_init_baseline=0 (inside: "
              f"{ours['timing']['total_s']:.2f} s, compile {ours['timing']['compile_s']:.2f} s)"
              f"  mae={ours['mae']:.6f} rmse={ours['rmse']:.6f} iou@tau={ours['iou@tau']:.6f}")
        print("  ours timing: " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in ours["timing"].items()))
        orig_s = float("nan")
        if args.reference_src:
            orig_s = run_original(pathlib.Path(args.reference_src), flags, ckpt,
                                  work / "orig.json", cwd)
            orig = json.loads((work / "orig.json").read_text())
            print(f"original: {orig_s:8.2f} s wall  mae={orig['mae']:.6f} rmse={orig['rmse']:.6f} "
                  f"iou@tau={orig['iou@tau']:.6f}")
        if not args.skip_default:
            default_s = run_ours(flags, ckpt, work / "default.json", cwd, args.batch_size, 1)
            default = json.loads((work / "default.json").read_text())
            same = default["mae"] == ours["mae"]
            print(f"cpac_default_seconds ours={default_s:.2f} (the default configuration: "
                  f"random_init_baseline=1, a second forward over every shape; "
                  f"{default_s / ours_s:.2f}x the like-for-like run; pretrained mae "
                  f"{'identical' if same else 'DIFFERS: ' + repr(default['mae'])})")
    ratio = orig_s / ours_s
    print(f"cpac_seconds ours={ours_s:.2f} original={orig_s:.2f} ratio={ratio:.2f} "
          "(like for like: random_init_baseline=0; ratio = original/ours seconds; > 1: we are "
          "faster)")


if __name__ == "__main__":
    main()
