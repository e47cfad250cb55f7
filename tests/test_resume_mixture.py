"""Issue 27 (bad 3): a resume compares the whole mixture. A component added, removed or changed
(in the config or in the mix_config YAML behind an unchanged path) is refused unless
train.allow_resume_changes names it, and every allowed change is recorded."""

import json

import pytest

from nepa3d_jax.data.mixture import MixComponent, MixSpec
from nepa3d_jax.train import loop, resume

from helpers import reference_config

PROGRAMS = loop.Programs()  # this module's runs share their compiled programs


def _record(*comps, seed=0, extra=None):
    spec = MixSpec(tuple(comps), num_samples=40, seed=seed, replacement=True)
    return {"data": {"mix_config": "mix.yaml", "mix_seed": seed}, "train": {"base_lr": 1.0},
            **(extra or {}),
            "derived": {"global_batch": 8, resume.MIXTURE_KEY: resume.mixture_record(spec)}}


A = MixComponent("a", "c/a", split="train", backend="mesh", weight=1.0)
B = MixComponent("b", "c/b", split="train", backend="udfgrid", weight=0.5)


def test_added_removed_and_changed_components_are_refused(tmp_path):
    saved = _record(A)
    with pytest.raises(resume.ResumeChangeError, match=r"data.mix.b: checkpoint '<absent>', now "
                                                      r"\{.*'backend': 'udfgrid'"):
        resume.check(saved, _record(A, B), tmp_path)
    with pytest.raises(resume.ResumeChangeError, match=r"data.mix.b: checkpoint \{.*\}, now "
                                                      r"'<absent>'"):
        resume.check(_record(A, B), saved, tmp_path)
    grid = MixComponent("a", "c/a", split="train", backend="mesh", weight=1.0,
                        overrides={"voxel_grid": 32})  # not in the summary
    with pytest.raises(resume.ResumeChangeError, match=r"data.mix.a: .*'voxel_grid': 32"):
        resume.check(saved, _record(grid), tmp_path)
    with pytest.raises(resume.ResumeChangeError, match=r"derived.mixture_seed: checkpoint 0, "
                                                      r"now 3"):
        resume.check(saved, _record(A, seed=3, extra={"data": {"mix_config": "mix.yaml",
                                                               "mix_seed": 0}}), tmp_path)
    # allowed by the component or the whole mixture; a field new in this version is no change
    assert list(resume.check(saved, _record(A, B), tmp_path, "data.mix.b")) == ["data.mix.b"]
    with pytest.raises(resume.ResumeChangeError, match="data.mix.b"):
        resume.check(saved, _record(A, B), tmp_path, "data.mix.a")
    newer = _record(A, extra={"train": {"base_lr": 1.0, "new_option": 1}})
    assert resume.check(saved, newer, tmp_path) == {}


def test_a_mix_yaml_edited_behind_the_same_path_is_refused_then_recorded(reference_dir,
                                                                         tmp_path):
    mix = tmp_path / "mix.yaml"
    text = (reference_dir / "mixA.yaml").read_text()  # roots made absolute for the copy
    for root in ("scan_cache", "cache"):
        text = text.replace(f"cache_root: {root},", f"cache_root: {reference_dir / root},")
    mix.write_text(text)
    workdir = tmp_path / "run"

    def config(**train):
        c = reference_config(reference_dir, workdir)
        c.data.mix_config = str(mix)
        c.train.update({"num_steps": 3, **train})
        return c

    loop.run(config(), programs=PROGRAMS)
    saved = json.loads((workdir / "config.json").read_text())
    assert list(saved["derived"][resume.MIXTURE_KEY]["components"]) == [
        "shapenet_mesh", "shapenet_udf", "scan_noray"]
    # drop the last component from the YAML (same path, same config)
    text = mix.read_text()
    assert text.rstrip().splitlines()[-1].lstrip().startswith("- {name: scan_noray")
    mix.write_text("\n".join(text.rstrip().splitlines()[:-1]) + "\n")
    with pytest.raises(resume.ResumeChangeError) as info:
        loop.run(config(num_steps=4), programs=PROGRAMS)
    assert "data.mix.scan_noray: checkpoint {" in str(info.value)
    assert "now '<absent>'" in str(info.value)
    assert not (workdir / resume.HISTORY).exists()

    loop.run(config(num_steps=4, allow_resume_changes="data.mix.scan_noray"), programs=PROGRAMS)
    (line,) = (workdir / resume.HISTORY).read_text().splitlines()
    entry = json.loads(line)
    assert entry["changed"]["data.mix.scan_noray"][1] == "<absent>"
    assert entry["changed"]["data.mix.scan_noray"][0]["backend"] == "pointcloud_noray"
    assert entry["allow_resume_changes"] == "data.mix.scan_noray"


def test_a_run_saved_before_the_resolved_mixture_resumes_on_its_inline_summary(tmp_path):
    """A checkpoint from a version that recorded only `data.mix` (no `derived.mixture`) is
    compared on that summary, read the same way on both sides: an unchanged mixture resumes,
    a changed one is refused."""
    summary = {"a": "mesh w=1 /c/a split=train"}
    old = {"data": {"mix": summary}, "train": {"base_lr": 1.0}, "derived": {"global_batch": 8}}
    now = _record(A, extra={"data": {"mix": summary, "mix_config": "mix.yaml", "mix_seed": 0}})
    assert resume.check(old, now, tmp_path) == {}
    moved = _record(A, extra={"data": {"mix": {"a": "mesh w=1 /c/other split=train"},
                                       "mix_config": "mix.yaml", "mix_seed": 0}})
    with pytest.raises(resume.ResumeChangeError, match="data.mix.a"):
        resume.check(old, moved, tmp_path)
