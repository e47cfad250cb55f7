"""Compilation paid once (issue 29): a second process running the same shapes loads every
compiled program from JAX's persistent cache (`nepa3d_jax.compile_cache`), and `off` turns the
cache off. JAX reports each lookup (JAX_LOG_COMPILES / JAX_EXPLAIN_CACHE_MISSES), so the test
counts the hits and misses a run logs, and the entries in the cache folder."""

import json
import os
import re
import subprocess
import sys

from nepa3d_jax import compile_cache

from helpers import REPO, run_main, tiny_pretrain_args

HIT = re.compile(r"Persistent compilation cache hit for '([^']+)'")
MISS = re.compile(r"PERSISTENT COMPILATION CACHE MISS for '([^']+)'")


def _entries(folder):
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_second_run_of_the_same_shapes_compiles_nothing(reference_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("JAX_LOG_COMPILES", "1")  # cache hits logged at WARNING
    monkeypatch.setenv("JAX_EXPLAIN_CACHE_MISSES", "1")  # and misses
    cache = tmp_path / "jax_cache"
    runs = []
    for name in ("first", "second"):
        proc = run_main([*tiny_pretrain_args(reference_dir, tmp_path / name, num_steps=1),
                         f"--compilation_cache={cache}"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append((HIT.findall(proc.stderr), MISS.findall(proc.stderr), _entries(cache)))
    (hits1, misses1, entries1), (hits2, misses2, entries2) = runs
    # the first run compiles every program (the train step among them) and caches each one
    assert not hits1 and "jit_train_step" in misses1 and len(entries1) == len(misses1)
    # the second compiles nothing: every program comes from the cache, no entry is added
    assert not misses2, f"compiled again: {sorted(set(misses2))}"
    assert "jit_train_step" in hits2 and len(hits2) == len(misses1)
    assert entries2 == entries1
    losses = [json.loads((tmp_path / n / "results.json").read_text())["final_loss"]
              for n in ("first", "second")]
    assert losses[0] == losses[1]  # the cached program computes the same numbers


_SCRIPT = """
import sys
import jax
from nepa3d_jax import compile_cache
print(compile_cache.enable(sys.argv[1]))
jax.block_until_ready(jax.jit(lambda x: x * 2 + 1)(jax.numpy.arange(3.0)))
"""


def _tiny_jit(arg, env):
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, arg], cwd=REPO, capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, JAX_PLATFORMS="cpu", JAX_LOG_COMPILES="1",
                                   JAX_EXPLAIN_CACHE_MISSES="1", **env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1], HIT.findall(proc.stderr) + MISS.findall(
        proc.stderr)


def test_folder_comes_from_the_flag_then_the_environment_and_off_turns_it_off(tmp_path):
    flag, env = tmp_path / "flag", tmp_path / "env"
    used, looked_up = _tiny_jit(str(flag), {"NEPA3D_COMPILATION_CACHE": str(env)})
    assert used == str(flag) and looked_up and _entries(flag) and not _entries(env)
    used, looked_up = _tiny_jit("", {"NEPA3D_COMPILATION_CACHE": str(env)})
    assert used == str(env) and looked_up and _entries(env)
    used, looked_up = _tiny_jit("off", {"NEPA3D_COMPILATION_CACHE": str(env)})
    assert used == "None" and not looked_up  # JAX never consulted a cache


def test_resolve_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    assert compile_cache.resolve() == str(tmp_path / "nepa3d_jax" / "jax")  # per-user default
    monkeypatch.setenv(compile_cache.ENV, "")
    assert compile_cache.resolve() == str(tmp_path / "nepa3d_jax" / "jax")
    for off in ("off", "OFF", "0", "none", "false"):
        assert compile_cache.resolve(off) is None
        monkeypatch.setenv(compile_cache.ENV, off)
        assert compile_cache.resolve() is None
    assert compile_cache.resolve(str(tmp_path / "x")) == str(tmp_path / "x")  # flag wins
    monkeypatch.chdir(tmp_path)
    assert compile_cache.resolve("rel") == str(tmp_path / "rel")  # absolute
