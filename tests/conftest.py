"""Shared test set-up: 8 fake CPU devices and the path to the golden reference outputs."""

import os
import pathlib

# Must happen before jax is imported anywhere in the test process.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = pathlib.Path(
    os.environ.get("NEPA3D_REFERENCE", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
    """`../shared/reference` beside the checkout; tests that need it skip (saying why) elsewhere."""
    if not (REFERENCE / "README.md").exists():
        pytest.skip(f"golden reference folder not found at {REFERENCE} (it sits beside the checkout "
                    "in development and CI; set NEPA3D_REFERENCE to point elsewhere)")
    return REFERENCE


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    """Subprocesses (`nepa3d-jax`, the study) share one persistent compilation cache per test
    session (per xdist worker), in pytest's temporary folder instead of the user's ~/.cache."""
    if "NEPA3D_COMPILATION_CACHE" not in os.environ:
        os.environ["NEPA3D_COMPILATION_CACHE"] = str(tmp_path_factory.mktemp("jax_cache"))
    yield
