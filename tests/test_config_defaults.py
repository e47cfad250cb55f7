"""Issue 23: every default has one owner, the job's defaults module, filled in once at load.

A loaded config (a file in configs/, a golden `.pt`'s args, a hand-written partial config) holds
every field of its job's defaults; the package reads fields directly, and an AST scan fails on any
`.get("field", default)` / `getattr(x, "field", default)` fallback left outside the loader.
"""

import ast
import pathlib

import ml_collections
import pytest

from nepa3d_jax import jobs
from nepa3d_jax.config import load_config
from nepa3d_jax.config.loading import fill_defaults
from nepa3d_jax.config.record import flatten
from nepa3d_jax.config.torch_args import config_from_torch_args
from nepa3d_jax.data import backends
from nepa3d_jax.train import pretrain_defaults

REPO = pathlib.Path(__file__).resolve().parents[1]
PKG = REPO / "nepa3d_jax"
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.py") if p.name != "__init__.py")


def _leaves(config) -> set[str]:
    """Dotted leaf fields, the named components of `data.mix` excluded (users name those)."""
    return {k for k in flatten(config) if not k.startswith("data.mix.")}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_file_holds_every_default_field(path):
    config = load_config(str(path))
    want = _leaves(jobs.default_config(config.job))
    assert want - _leaves(config) == set()
    before = config.to_dict()
    assert fill_defaults(config).to_dict() == before  # filling again changes nothing


def test_golden_checkpoint_args_give_a_full_config(reference_dir):
    torch = pytest.importorskip("torch")  # noqa: F841 -- reading a .pt needs it
    from nepa3d_jax.checkpoint.torch_file import load_torch_file

    pts = sorted((reference_dir / "ckpt").rglob("*.pt"))
    assert pts
    for pt in pts:
        args = load_torch_file(str(pt))["args"]
        args = dict(args) if isinstance(args, dict) else vars(args)
        config = config_from_torch_args(args)
        assert _leaves(jobs.default_config("pretrain")) - _leaves(config) == set(), pt
        assert config.data.voxel_grid == backends.VOXEL_GRID


def test_a_partial_config_is_filled_and_keeps_its_own_values():
    """What a hand-written config leaves out comes from the defaults module (the values the
    scattered fallbacks used to disagree on included); what it states stays; extra blocks stay;
    `data.mix` components are the config's own, each filled from MIX_COMPONENT_DEFAULTS."""
    config = fill_defaults(ml_collections.ConfigDict(dict(
        train=dict(log_every_steps=7), extra=dict(note="kept"),
        data=dict(mix=dict(only=dict(cache_root="r", backend="mesh", weight=1.0))))))
    assert config.job == "pretrain" and config.train.log_every_steps == 7
    assert config.extra.note == "kept"
    assert (config.data.loader, config.train.checkpoint_every_steps, config.train.lr_scale,
            config.train.dual_mask_window, config.data.mix_num_samples, config.data.n_ray) == (
        "auto", 1000, True, 32, 200000, 1024)
    assert (config.data.voxel_grid, config.data.voxel_dilate, config.data.voxel_max_steps) == (
        backends.VOXEL_GRID, backends.VOXEL_DILATE, backends.VOXEL_MAX_STEPS)
    assert list(config.data.mix) == ["only"]
    assert config.data.mix.only.to_dict() == dict(cache_root="r", backend="mesh", weight=1.0,
                                                  **pretrain_defaults.MIX_COMPONENT_DEFAULTS)


def test_eval_job_configs_are_filled_from_their_own_defaults():
    config = fill_defaults(ml_collections.ConfigDict(dict(job="cpac_udf", ckpt="x")))
    assert config.ckpt == "x"
    assert _leaves(jobs.default_config("cpac_udf")) - _leaves(config) == set()
    assert "data" not in config  # nothing of the pretraining defaults
    unknown = ml_collections.ConfigDict(dict(job="nope"))
    assert fill_defaults(unknown).to_dict() == {"job": "nope"}  # validation names it


# --- no fallback default outside the loader ----------------------------------------------------
# Whole paths allowed to keep `.get("field", default)` on configs, with why.
ALLOWED_PATHS = {
    "nepa3d_jax/config/loading.py": "the loader itself",
}
# (path, receiver) pairs that read something other than our config, with why.
ALLOWED_RECEIVERS = {
    ("nepa3d_jax/config/torch_args.py", "args"): "an original run's argparse args: a missing "
    "arg means the original's argparse default",
    ("nepa3d_jax/review/mix_check.py", "args"): "an original run's argparse args (as above)",
    ("nepa3d_jax/data/mixture.py", "d"): "an entry of an original-format mix YAML",
    ("nepa3d_jax/data/mixture.py", "top"): "the top level of an original-format mix YAML",
    ("nepa3d_jax/study/arms.py", "recipes.get(recipe)"): "a recipe's stages (a recipe names "
    "only the stages it changes)",
    ("nepa3d_jax/study/report.py", "a['probe']['summary']"): "an arm's probe summary (no "
    "random_init block when the baseline was off)",
    ("nepa3d_jax/eval/console.py", "result"): "a job's result dict (what it reported)",
    ("nepa3d_jax/eval/cls/finetune.py", "pre"): "a checkpoint's recorded data settings ({} when "
    "training from scratch)",
    ("nepa3d_jax/eval/cpac/extract.py", "pretrained"): "getattr on a loaded checkpoint object "
    "(a Pretrained or a bare forward function)",
    ("nepa3d_jax/eval/cpac/extract.py", "model"): "getattr on a flax module",
}


def _field_names() -> set[str]:
    out: set[str] = set(pretrain_defaults.MIX_COMPONENT_DEFAULTS)

    def walk(node):
        for key, value in node.items():
            out.add(key)
            if hasattr(value, "items"):
                walk(value)

    for name in jobs.JOBS:
        walk(jobs.default_config(name))
    return out


def fallbacks(tree: ast.AST, fields: set[str]) -> list[tuple[int, str, str]]:
    """(line, receiver, field) of every `X.get("field", default)`, `getattr(X, "field",
    default)` and `get_path(X, "a.b", default)` naming a config field."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, node.args
        if (isinstance(func, ast.Attribute) and func.attr == "get" and len(args) >= 1
                and len(args) + len(node.keywords) >= 2 and isinstance(args[0], ast.Constant)
                and args[0].value in fields):
            found.append((node.lineno, ast.unparse(func.value), args[0].value))
        elif (isinstance(func, ast.Name) and func.id in ("getattr", "get_path") and len(args) == 3
              and isinstance(args[1], ast.Constant) and isinstance(args[1].value, str)
              and args[1].value.split(".")[-1] in fields):
            found.append((node.lineno, ast.unparse(args[0]), args[1].value))
    return found


def test_no_config_fallback_default_outside_the_loader():
    fields = _field_names()
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if any(rel.startswith(p) for p in ALLOWED_PATHS):
            continue
        for line, receiver, field in fallbacks(ast.parse(path.read_text()), fields):
            if (rel, receiver) not in ALLOWED_RECEIVERS:
                bad.append(f"{rel}:{line}: {receiver}.get({field!r}, ...)")
    assert bad == [], "read the field directly (the loader fills defaults):\n" + "\n".join(bad)


def test_the_scan_finds_each_fallback_form():
    """The scan is not vacuous: each form it looks for is caught."""
    code = ('a = config.train.get("log_every_steps", 50)\n'
            'b = getattr(cfg, "loader", "threads")\n'
            'c = get_path(config, "train.lr_scale", False)\n'
            'd = os.environ.get("HOME", "")\n')
    assert [f for _, _, f in fallbacks(ast.parse(code), _field_names())] == [
        "log_every_steps", "loader", "train.lr_scale"]


def test_main_fills_the_config_its_flag_parsed():
    """`python -m nepa3d_jax.main --config F`: absl parses F; main fills it like load_config."""
    from nepa3d_jax import main

    config = main.loaded_config(ml_collections.ConfigDict(dict(train=dict(num_steps=5))), [])
    assert config.train.num_steps == 5 and config.train.log_every_steps == 50
    assert _leaves(jobs.default_config("pretrain")) - _leaves(config) == set()
