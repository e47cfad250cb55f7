"""Defaults of the `pretrain` job: the fields every run shares (the seed plan's 1024-point setting).

The package owns them (start-up guards and `.pt` imports compare against them); `configs/base.py`
re-exports them and the run files (configs/runA.py .. runD.py) state only what differs.
Command:  python -m nepa3d_jax.main --config configs/base.py [--config.a.b=v ...]
Derived values (sequence length, global batch, effective LR, steps) are computed in
`nepa3d_jax.config.derived` from these fields and the device count; never set them here.
"""

import ml_collections

# The plan's corpora (section 3 of the seed plan); roots are relative to the working directory.
SHAPENET_CACHE = "data/shapenet_cache_v0"
SCAN_CACHE = "data/scanobjectnn_main_split_v2"

# Fields of a `data.mix` component that may be left out (cache_root, backend and weight are
# required). `data.mix` names its components freely, so the loader fills each component from
# this instead of adding the components below (nepa3d_jax.config.loading.fill_defaults).
MIX_COMPONENT_DEFAULTS = dict(split="train", order=-1)
NAMED_MAPS = {"data.mix": MIX_COMPONENT_DEFAULTS}


def mix_component(cache_root: str, backend: str, weight: float,
                  split: str = MIX_COMPONENT_DEFAULTS["split"],
                  order: int = MIX_COMPONENT_DEFAULTS["order"]) -> ml_collections.ConfigDict:
    """One inline mixture component; `order` >= 0 places it (else: after those, by name)."""
    return ml_collections.ConfigDict(
        dict(cache_root=cache_root, split=split, backend=backend, weight=weight, order=order))


def mix_mesh_udf_scan() -> ml_collections.ConfigDict:
    """pretrain_mixed_shapenet_mesh_udf_scan_mainsplit.yaml (Runs A, C, D), in the YAML's order.

    The order fixes the global sample indices, so with it the inline mixture draws the original
    MixtureSampler's stream on the same corpus (ConfigDict itself iterates by name).
    """
    return ml_collections.ConfigDict(dict(
        shapenet_mesh=mix_component(SHAPENET_CACHE, "mesh", 0.34, order=0),
        shapenet_udf=mix_component(SHAPENET_CACHE, "udfgrid", 0.33, order=1),
        scan_noray_mainsplit=mix_component(SCAN_CACHE, "pointcloud_noray", 0.33, order=2),
    ))


def mix_scan_pointcloud() -> ml_collections.ConfigDict:
    """pretrain_mixed_shapenet_scan_pointcloud_mainsplit.yaml (Run B), in the YAML's order."""
    return ml_collections.ConfigDict(dict(
        shapenet_pc=mix_component(SHAPENET_CACHE, "pointcloud_noray", 0.50, order=0),
        scan_noray_mainsplit=mix_component(SCAN_CACHE, "pointcloud_noray", 0.50, order=1),
    ))


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.job = "pretrain"
    c.workdir = "runs/base"
    c.seed = 0

    d = c.data = ml_collections.ConfigDict()
    d.mix = mix_mesh_udf_scan()     # named components: cache_root, split, backend, weight, order
    d.mix_config = ""               # optional original-format YAML; replaces `mix` when set
    d.mix_num_samples = 200000      # samples per epoch, drawn with replacement
    d.mix_seed = 0
    d.replacement = True
    d.n_point = 1024
    d.n_ray = 1024
    d.qa_tokens = 1
    d.qa_layout = "interleave"      # interleave | split (Q/A); ignored when qa_tokens=0
    d.max_len = 4500                # -1: exactly the required sequence length
    d.add_eos = 1
    d.pt_xyz_key = "pt_xyz_pool"
    d.pt_dist_key = "pt_dist_pool"
    d.ablate_point_dist = 0
    d.pt_sample_mode_train = "fps"  # random | fps | rfps | fixed_grid
    d.pt_fps_key = "auto"           # auto | none | <npz key>
    d.pt_rfps_m = 4096
    d.point_order_mode = "fps"      # morton | fps | random
    d.drop_ray_prob = 0.0
    d.force_missing_ray = False
    d.n_point_schedule = ""         # "epoch:n,epoch:n" (original format); empty = fixed
    d.n_ray_schedule = ""
    # Opt-in augmentation (nepa3d_jax/train/augment.py): per sample and step, scale in
    # [1 - aug_scale, 1 + aug_scale] (distances scaled along), shift in [-aug_shift, aug_shift]^3,
    # aug_yaw=1: a uniform rotation about +z. All 0: the pools as cached (the original).
    d.aug_scale = 0.0
    d.aug_shift = 0.0
    d.aug_yaw = 0
    d.pt_pool_pad = 0               # 0: max pool size found in the corpus
    d.ray_pool_pad = 0
    d.validate = "full"             # off | header | full: cache files checked before step 1
    d.prefetch = 2
    d.loader = "auto"               # threads | processes (grain workers) | auto (by corpus size)
    d.workers = 8                   # loader threads or processes per host
    d.stage_dir = ""                # e.g. "$TMPDIR": copy the corpora there once per node first
    # The `voxel` backend (the original's dataset defaults; a mixture component may override).
    d.voxel_grid = 64
    d.voxel_dilate = 1
    d.voxel_max_steps = 0           # 0: no limit on the ray walk's steps
    # A procedural corpus built before training when `out_dir` is set (configs/demo.py).
    d.synthetic = ml_collections.ConfigDict(dict(out_dir="", builder="", n_per_class=4, seed=0))

    m = c.model = ml_collections.ConfigDict()
    m.arch = "causal"
    m.d_model = 384
    m.layers = 8
    m.heads = 6
    m.mlp_ratio = 4.0
    m.attention = "auto"            # auto | xla | cudnn | blockwise
    m.compute_dtype = "auto"        # auto (bf16 on GPU, f32 on CPU) | float32 | bfloat16
    m.remat = False
    m.nepa_target = "full"          # full (the original: z) | content (token_mlp(feat) only)
    # Readout fixes (opt-in; docs/evaluation.md "The study"): a LayerNorm after the encoder
    # (h and the prediction read normalised states) and the type table's init std (torch's 1.0
    # swamps pooled features).
    m.final_norm = False
    m.type_emb_std = 1.0

    t = c.train = ml_collections.ConfigDict()
    t.objective = "nepa"            # nepa | mae
    t.mask_ratio = 0.4
    t.batch_per_device = 16
    t.epochs = 100
    t.num_steps = 0                 # > 0 overrides epochs
    t.base_lr = 3e-4
    # Linear scaling rule: lr = base_lr * global_batch / lr_ref_batch (lr_scale=False: lr = base_lr).
    # ref 128 = the plan's 2 nodes x 4 GPUs x 16, so the plan's runs train at the nominal 3e-4.
    t.lr_scale = True
    t.lr_ref_batch = 128
    t.weight_decay = 0.05
    t.b1 = 0.9
    t.b2 = 0.999
    t.grad_clip = 0.0               # 0: off (the original does not clip)
    # Opt-in: "cosine" = linear warmup over lr_warmup_steps, cosine decay to 0 at the last step
    # (the original keeps the LR constant).
    t.lr_schedule = "constant"      # constant | cosine
    t.lr_warmup_steps = 0
    t.dual_mask_near = 0.0
    t.dual_mask_far = 0.0
    t.dual_mask_window = 32
    t.dual_mask_warmup_frac = 0.05
    t.dual_mask_type_aware = 0
    # Opt-in: + weight x standardised squared error of the next token's raw answer slots
    # (distance / hit / depth / normal), from a linear head on h (docs/evaluation.md).
    t.answer_loss_weight = 0.0
    t.log_every_steps = 50
    t.checkpoint_every_steps = 1000
    t.keep_checkpoints = 3
    t.lock_stale_hours = 1.0        # run.lock of a silent holder on another host is stale after
    t.allow_resume_changes = ""     # e.g. "train.base_lr,data.mix": accepted on resume, recorded
    t.eval_after = ""               # e.g. "cpac_udf": evaluator run on the final state

    # Device mesh (data x fsdp). Hosts and processes come from the launcher (PBS node file or
    # NEPA3D_* variables, see docs/pbs.md), never from the config.
    p = c.parallel = ml_collections.ConfigDict()
    p.fsdp = 1                      # > 1: shard params / optimizer state over this many devices

    # Per-evaluator settings for `train.eval_after`: `eval.<job>` updates that job's defaults.
    c.eval = ml_collections.ConfigDict()
    return c
