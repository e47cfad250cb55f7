"""Issue 27 (smaller): an unpaired_split JSON was not validated (`key="../x"` would write
outside the view root), and data_prep.validate did not flag a key the trainer's default
backend needs (`pt_dist_pool`)."""

import json

import pytest

from data_prep import unpaired_split, validate

from helpers import make_arrays, write_cache


@pytest.fixture()
def src(tmp_path):
    write_cache(tmp_path / "cache" / "train" / "chair" / "a.npz", seed=1)
    return tmp_path / "cache"


def _map(**record):
    r = {"key": "chair/a", "split": "train_mesh", "src_split": "train",
         "src_relpath": "train/chair/a.npz"}
    r.update(record)
    return {"meta": {}, "records": [r]}


@pytest.mark.parametrize("record,field", [
    ({"key": "../x"}, "records[0].key='../x'"),
    ({"key": "chair/../../x"}, "records[0].key="),
    ({"key": "../../etc/passwd"}, "records[0].key="),
    ({"key": "chair/.."}, "records[0].key="),
    ({"split": "../../x"}, "records[0].split='../../x'"),
    ({"src_relpath": "../outside.npz"}, "records[0].src_relpath='../outside.npz'"),
    ({"src_relpath": "/etc/passwd"}, "records[0].src_relpath='/etc/passwd'"),
])
def test_hostile_split_map_writes_nothing(tmp_path, src, record, field, capsys):
    path = tmp_path / "map.json"
    path.write_text(json.dumps(_map(**record)))
    out = tmp_path / "views" / "view"
    rc = unpaired_split.main(["view", "--src_cache_root", str(src), "--split_json", str(path),
                              "--out_root", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and field in err and str(path) in err, err
    assert not (tmp_path / "views").exists()  # nothing written, inside the root or outside
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.npz").exists()


def test_a_valid_map_still_builds_the_view(tmp_path, src):
    stats = unpaired_split.materialize_view(str(src), _map(), str(tmp_path / "view"))
    assert stats["created"] == 1
    assert (tmp_path / "view" / "train_mesh" / "chair" / "a.npz").is_file()


def test_validate_flags_a_key_the_default_backend_needs(tmp_path, capsys):
    arrays = make_arrays(seed=3)
    del arrays["pt_dist_pool"]
    bad = write_cache(tmp_path / "c" / "train" / "chair" / "nodist.npz", arrays=arrays)
    assert validate.main(["--cache_root", str(tmp_path / "c"), "--splits", "train"]) == 1
    out = capsys.readouterr().out
    assert bad in out and "pt_dist_pool" in out and "missing key" in out
    assert validate.main(["--cache_root", str(tmp_path / "c"), "--splits", "train",
                          "--backends", "udfgrid"]) == 0
