"""Training-step throughput: our jitted step vs the original PyTorch model/loss/AdamW step.

Same shapes, same machine, same run. Ours is the whole jitted step (on-device tokenization
from padded pools with pre-computed FPS orders, forward, NEPA loss, AdamW); the original's
step is what its training loop runs per batch (tokens come from its DataLoader workers):
forward, `nepa_loss`, backward, AdamW (bf16 autocast on GPU, as its `--mixed_precision auto`).
Ours is measured for each attention implementation that runs here; `auto` is the headline.

  python bench/train_step.py --preset runA --reference_src ref_src [--steps 5]

Presets: runA / runB / runD (the plan's runs, batch 2 on CPU), `study` (the study's `small`
pretraining: d 96, 3 layers, 4 heads, 96 points + 32 rays as Q/A tokens, T 258, batch 16, the
study corpus's pools) and `quick` (T 130, d 64, 2 layers, batch 4).

Last line: `train_step tokens/s ours=<x> original=<y> ratio=<x/y>`; on GPU also MFU.
"""

from __future__ import annotations

import os
import sys

# Running `python bench/x.py` puts bench/ first on sys.path, where bench/tokenize.py would
# shadow the standard library's `tokenize`; look modules up from the repository root instead.
_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _BENCH_DIR]

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.machine import header  # noqa: E402
from bench.timing import interleaved  # noqa: E402
from data_prep.study_corpus import STUDY_PROFILE  # noqa: E402
from nepa3d_jax import cli  # noqa: E402
from nepa3d_jax.config import load_config  # noqa: E402
from nepa3d_jax.model.attention import resolve_implementation  # noqa: E402
from nepa3d_jax.parallel import batch_sharding, make_mesh  # noqa: E402
from nepa3d_jax.study.presets import PRESETS as STUDY_PRESETS  # noqa: E402
from nepa3d_jax.tokenizer import sequence_length  # noqa: E402
from nepa3d_jax.train.optimizer import make_optimizer  # noqa: E402
from nepa3d_jax.train.schedule import Sizes  # noqa: E402
from nepa3d_jax.train.state import build_model, create_state, init_fn  # noqa: E402
from nepa3d_jax.train.step import StepSpec, jit_train_step, make_train_step, tokenize  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The study's scale (`python -m nepa3d_jax.study --preset small`): its model and token counts,
# its batch and its corpus's pool sizes, read from their owners.
_STUDY = STUDY_PRESETS["small"]["pretrain"]
PRESETS = {  # config file, overrides, batch (cpu, gpu), pools (pt, ray)
    "quick": ("configs/runA.py", dict(n_point=32, n_ray=32, d_model=64, layers=2, heads=4),
              (4, 16), (2000, 800)),
    "study": ("configs/base.py",
              {k: v for k, v in _STUDY.items() if k.startswith(("model.", "data.n_"))},
              (int(_STUDY["train.batch_per_device"]),) * 2,
              (STUDY_PROFILE.pt_pool, STUDY_PROFILE.ray_pool)),
    "runA": ("configs/runA.py", {}, (2, 16), (20000, 8000)),
    "runB": ("configs/runB.py", {}, (2, 16), (20000, 8000)),
    "runD": ("configs/runD.py", {}, (2, 16), (20000, 8000)),
}
FPS_K = 2048
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def preset_config(name: str):
    path, over, _, _ = PRESETS[name]
    c = load_config(os.path.join(REPO, path))
    for k, v in over.items():
        if "." in k:  # "section.field"
            section, field = k.split(".", 1)
            c[section][field] = v
        else:
            (c.model if k in ("d_model", "layers", "heads") else c.data)[k] = v
    c.data.max_len = -1
    return c


def synthetic_pools(batch: int, pt_pool: int, ray_pool: int, seed: int = 0) -> dict:
    rng = np.random.RandomState(seed)
    d = rng.normal(size=(batch, ray_pool, 3)).astype(np.float32)
    k = min(FPS_K, pt_pool)
    return dict(
        pt_xyz=rng.uniform(-1, 1, (batch, pt_pool, 3)).astype(np.float32),
        pt_dist=rng.uniform(0, 1, (batch, pt_pool)).astype(np.float32),
        pt_count=np.full(batch, pt_pool, np.int32),
        pt_fps_order=np.stack([rng.permutation(pt_pool)[:k] for _ in range(batch)]).astype(np.int32),
        fps_count=np.full(batch, k, np.int32),
        ray_o=rng.uniform(-1, 1, (batch, ray_pool, 3)).astype(np.float32),
        ray_d=d / np.linalg.norm(d, axis=-1, keepdims=True),
        ray_hit=(rng.uniform(size=(batch, ray_pool)) < 0.5).astype(np.float32),
        ray_t=rng.uniform(0, 2, (batch, ray_pool)).astype(np.float32),
        ray_n=rng.normal(size=(batch, ray_pool, 3)).astype(np.float32),
        ray_count=np.full(batch, ray_pool, np.int32),
        ray_available=np.ones(batch, bool),
        sample_id=np.arange(batch, dtype=np.int32))


def ours(config, pools, attention: str):
    """(one step, compile seconds, parameter count) of our jitted step; compiled and run once."""
    config.model.attention = attention
    mesh = make_mesh(config, jax.local_devices())
    sizes = Sizes(int(config.data.n_point), int(config.data.n_ray), 0)
    spec = StepSpec.from_config(config, sizes, 1)
    model = build_model(config, spec.seq_len)
    optimizer = make_optimizer(config.train, 3e-4, 1)
    state, shardings = create_state(init_fn(model, optimizer, seed=0), mesh)
    step = jit_train_step(make_train_step(model, optimizer, spec), shardings, mesh)
    batch = jax.device_put(pools, batch_sharding(mesh))
    holder = {"state": state}

    def one():
        holder["state"], metrics = step(holder["state"], batch)
        jax.block_until_ready(metrics["loss"])

    t = time.perf_counter()
    one()
    compile_s = time.perf_counter() - t
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(holder["state"].params))
    return one, compile_s, n_params


def original_step(reference_src, config, feat, type_id):
    """One step of the original (model, nepa_loss, backward, AdamW); run once (warm-up)."""
    sys.path.insert(0, os.path.abspath(reference_src))
    import torch

    warnings.filterwarnings("ignore", message="enable_nested_tensor")
    from nepa3d.models.query_nepa import QueryNepa as TorchQueryNepa

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    m = config.model
    qa = bool(config.data.qa_tokens)
    model = TorchQueryNepa(feat_dim=15, d_model=m.d_model, n_types=9 if qa else 5, nhead=m.heads,
                           num_layers=m.layers, max_len=feat.shape[1]).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
    feat_t = torch.as_tensor(np.array(feat), device=device)
    type_t = torch.as_tensor(np.array(type_id), device=device).long()

    def one():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=gpu):
            z, z_hat, _ = model(feat_t, type_t)
            loss = model.nepa_loss(z, z_hat, type_id=type_t)
        loss.backward()
        opt.step()
        if gpu:
            torch.cuda.synchronize()

    one()  # warm-up (allocator, kernels)
    return one


def attention_choices(requested: str, batch: int, heads: int, t: int, layers: int) -> list[str]:
    """`auto` first (the headline), then the explicit implementations that can run here.

    On CPU the `xla` path keeps every layer's (B, H, T, T) scores and probabilities for the
    backward; it is left out when those would take more than a third of this machine's
    memory (Run-A at batch 2: ~19 GB; it was OOM-killed at 24 GB before the original ran).
    """
    if requested:
        return [a.strip() for a in requested.split(",") if a.strip()]
    if jax.default_backend() == "gpu":
        return ["auto", "xla", "cudnn"]
    choices = ["auto", "blockwise"]
    scores = layers * 3 * 4 * batch * heads * t * t  # per layer: scores, probs, a gradient
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = 0
    if mem and scores < mem / 3:
        choices.append("xla")
    else:
        print(f"  ours attention=xla: skipped ({scores / 2**30:.1f} GiB of scores)")
    return choices


def flops_per_step(n_params: int, layers: int, d_model: int, batch: int, t: int) -> float:
    """6 N per token for the weights plus 12 L d T per token for attention (fwd + bwd)."""
    return batch * t * (6.0 * n_params + 12.0 * layers * d_model * t)


def main() -> None:
    ap = cli.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    ap.add_argument("--reference_src", default="")
    ap.add_argument("--steps", type=int, default=5,
                    help="timed rounds (each: one step of every side)")
    ap.add_argument("--batch", type=int, default=0, help="0: the preset's (2 on CPU, 16 on GPU)")
    ap.add_argument("--attention", default="",
                    help="comma-separated implementations (default: auto and what fits here)")
    args = ap.parse_args()
    print(header("train_step"), flush=True)

    gpu = jax.default_backend() == "gpu"
    config = preset_config(args.preset)
    _, _, batches, (pt_pool, ray_pool) = PRESETS[args.preset]
    batch = args.batch or batches[1 if gpu else 0]
    batch = max(batch, jax.local_device_count()) // jax.local_device_count() * jax.local_device_count()
    pools = synthetic_pools(batch, pt_pool, ray_pool)
    t = sequence_length(int(config.data.n_point), int(config.data.n_ray),
                        bool(config.data.qa_tokens), True)
    tokens = batch * t
    print(f"preset={args.preset} device={jax.devices()[0].device_kind} x{jax.local_device_count()} "
          f"batch={batch} T={t} d={config.model.d_model} layers={config.model.layers} "
          f"heads={config.model.heads}")

    steps = {}  # name -> one step, every side compiled / warmed up before any timing
    compile_s, n_params = {}, 0
    for attention in attention_choices(args.attention, batch, int(config.model.heads), t,
                                       int(config.model.layers)):
        try:
            one, compile_s[attention], n_params = ours(config.copy_and_resolve_references(),
                                                       pools, attention)
        except Exception as err:  # an implementation not available on this backend
            print(f"  ours attention={attention}: unavailable ({type(err).__name__}: "
                  f"{str(err).splitlines()[0][:120]})")
            continue
        steps[attention] = one
    torch_version = ""
    if args.reference_src:
        spec = StepSpec.from_config(config, Sizes(int(config.data.n_point),
                                                  int(config.data.n_ray), 0), 1)
        feat, type_id = jax.jit(lambda p: tokenize(spec, p, jax.random.key(0)))(pools)
        steps["original"] = original_step(args.reference_src, config, feat, type_id)
        torch_version = __import__("torch").__version__
    print(f"  timing: median of {args.steps} rounds, each round one step of every side in turn "
          "(rotating order, a pause before each side)")
    seconds = interleaved(steps, args.steps)

    auto_is = resolve_implementation("auto", seq_len=t, has_mask=False,
                                     dtype=jnp.bfloat16 if gpu else jnp.float32)
    for attention, sec in seconds.items():
        if attention == "original":
            continue
        line = (f"  ours attention={attention}: {sec * 1e3:.1f} ms/step, {tokens / sec:.0f} "
                f"tokens/s (compile {compile_s[attention]:.1f} s)")
        if attention == "auto":
            line += f" [auto = {auto_is} at T={t}]"
        if gpu:
            kind = jax.devices()[0].device_kind
            peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in kind), None)
            if peak:
                flops = flops_per_step(n_params, int(config.model.layers),
                                       int(config.model.d_model), batch, t)
                line += f", MFU {flops / sec / peak:.1%}"
        print(line)
    if "auto" in seconds and auto_is in seconds:  # the same program twice: the noise floor
        print(f"  noise: auto and {auto_is} run the same program; they differ by "
              f"{abs(seconds['auto'] / seconds[auto_is] - 1):.1%} in this run")
    ours_tps = tokens / seconds["auto"] if "auto" in seconds else float("nan")
    original_tps = float("nan")
    if "original" in seconds:
        sec = seconds["original"]
        original_tps = tokens / sec
        print(f"  original (torch {torch_version}): {sec * 1e3:.1f} ms/step, "
              f"{original_tps:.0f} tokens/s")
    ratio = ours_tps / original_tps if original_tps == original_tps else float("nan")
    print(f"train_step tokens/s ours={ours_tps:.1f} original={original_tps:.1f} ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
