"""Issue 27 (smaller): the untrusted-.pt error quoted torch's advice to "re-run with
weights_only=False" (which would run the payload) instead of naming the forbidden global."""

import os

import pytest

torch = pytest.importorskip("torch")

from nepa3d_jax.checkpoint.torch_file import CheckpointError, load_torch_file  # noqa: E402


class _System:
    def __reduce__(self):
        return (os.system, ("true",))


class _Eval:
    def __reduce__(self):
        return (eval, ("1",))


@pytest.mark.parametrize("payload,name", [
    (_System(), f"{os.system.__module__}.system"), (_Eval(), "eval")])
def test_error_names_the_forbidden_global_not_the_unsafe_advice(tmp_path, payload, name):
    path = tmp_path / "evil.pt"
    torch.save({"model": payload}, str(path))
    with pytest.raises(CheckpointError) as info:
        load_torch_file(path)
    msg = str(info.value)
    assert f"Unsupported global {name} (" in msg and str(path) in msg
    assert "weights_only" not in msg.replace("weights-only", "") and "Re-run" not in msg
