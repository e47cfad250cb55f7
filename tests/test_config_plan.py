"""configs/runA..runD.py against the seed plan's run matrix (section 3) and the original's
A/B/C/D submit script (seeds 100 + i, shared knobs): every field the plan fixes, per run."""

import pathlib

import pytest

from nepa3d_jax.config import derive, load_config
from nepa3d_jax.tokenizer import sequence_length

REPO = pathlib.Path(__file__).resolve().parents[1]
SHAPENET, SCAN = "data/shapenet_cache_v0", "data/scanobjectnn_main_split_v2"
# pretrain_mixed_shapenet_mesh_udf_scan_mainsplit.yaml / ..._scan_pointcloud_mainsplit.yaml
MIX_MESH_UDF_SCAN = {"shapenet_mesh": (SHAPENET, "train", "mesh", 0.34),
                     "shapenet_udf": (SHAPENET, "train", "udfgrid", 0.33),
                     "scan_noray_mainsplit": (SCAN, "train", "pointcloud_noray", 0.33)}
MIX_SCAN_PC = {"shapenet_pc": (SHAPENET, "train", "pointcloud_noray", 0.50),
               "scan_noray_mainsplit": (SCAN, "train", "pointcloud_noray", 0.50)}

# run: (n_ray, qa_tokens, max_len, pt_xyz_key, ablate_point_dist, point_order_mode, mix, seed,
#       tokens per sequence)
PLAN = {
    "A": (1024, 1, 4500, "pt_xyz_pool", 0, "fps", MIX_MESH_UDF_SCAN, 100, 4098),
    "B": (0, 0, 2500, "pc_xyz", 1, "morton", MIX_SCAN_PC, 101, 1026),
    "C": (1024, 1, 4500, "pt_xyz_pool", 0, "morton", MIX_MESH_UDF_SCAN, 102, 4098),
    "D": (0, 1, 2500, "pt_xyz_pool", 0, "fps", MIX_MESH_UDF_SCAN, 103, 2050),
}


@pytest.mark.parametrize("run", sorted(PLAN))
def test_run_matches_the_plan(run):
    c = load_config(str(REPO / "configs" / f"run{run}.py"))
    n_ray, qa, max_len, xyz_key, ablate, order, mix, seed, seq_len = PLAN[run]
    d = c.data
    assert c.job == "pretrain" and c.seed == seed
    assert c.workdir == f"runs/pretrain_abcd_1024_run{run}"
    assert (d.n_point, d.n_ray, d.qa_tokens, d.max_len) == (1024, n_ray, qa, max_len)
    assert (d.pt_xyz_key, d.ablate_point_dist, d.point_order_mode) == (xyz_key, ablate, order)
    # Shared by all four (the submit script's COMMON and the wrapper's defaults).
    assert (d.pt_sample_mode_train, d.pt_fps_key, d.pt_dist_key) == ("fps", "auto",
                                                                     "pt_dist_pool")
    assert (d.add_eos, d.qa_layout, d.drop_ray_prob, d.n_point_schedule, d.n_ray_schedule) == (
        1, "interleave", 0.0, "", "")
    assert (d.mix_config, d.mix_num_samples, d.mix_seed, d.replacement) == ("", 200000, 0, True)
    got_mix = {name: (m.cache_root, m.split, m.backend, m.weight) for name, m in d.mix.items()}
    assert got_mix == mix
    m, t = c.model, c.train
    assert (m.arch, m.d_model, m.layers, m.heads, m.mlp_ratio) == ("causal", 384, 8, 6, 4.0)
    assert (t.objective, t.batch_per_device, t.epochs, t.base_lr) == ("nepa", 16, 100, 3e-4)
    assert (t.dual_mask_near, t.dual_mask_far) == (0.0, 0.0)
    # Sequence length from the tokenizer's own formula, and what the run derives.
    assert sequence_length(d.n_point, d.n_ray, d.qa_tokens, bool(d.add_eos)) == seq_len
    assert derive(c, num_devices=8).seq_len == seq_len <= max_len


def test_runs_differ_only_where_the_plan_says():
    """C and D are 'same as A except ...': the flattened configs differ in exactly those
    fields (plus workdir and seed)."""
    from nepa3d_jax.config.record import flatten

    flat = {r: flatten(load_config(str(REPO / "configs" / f"run{r}.py"))) for r in PLAN}
    assert flat["A"].keys() == flat["C"].keys() == flat["D"].keys()

    def diff(a, b):
        return {k for k in flat[a] if flat[a][k] != flat[b][k]}

    assert diff("A", "C") == {"workdir", "seed", "data.point_order_mode"}
    assert diff("A", "D") == {"workdir", "seed", "data.n_ray", "data.max_len"}
