"""`make venv`'s torch step (the CPU wheel index, the package index when that fails) and docs
that cite only files of the repository."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _make_torch(tmp_path: pathlib.Path, fail_index: bool) -> tuple[subprocess.CompletedProcess,
                                                                  list[str]]:
    """`make torch` with a stand-in for the venv's python that records each pip call and fails
    the one naming --index-url when asked (an unreachable wheel index)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    log = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$*" >> "$CALLS"\n'
                    'case "$*" in *--index-url*) [ "$FAIL_INDEX" = 1 ] && exit 1;; esac\n'
                    'exit 0\n')
    fake.chmod(0o755)
    env = {**os.environ, "CALLS": str(log), "FAIL_INDEX": "1" if fail_index else "0"}
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "torch",
                           f"PY={fake}", "TORCH_INDEX=http://127.0.0.1:9/cpu", "PIP_TIMEOUT=2"],
                          capture_output=True, text=True, timeout=60, env=env)
    return proc, log.read_text().splitlines() if log.exists() else []


def test_torch_comes_from_the_cpu_index_when_it_answers(tmp_path):
    proc, calls = _make_torch(tmp_path, fail_index=False)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 1, calls
    assert "--index-url http://127.0.0.1:9/cpu" in calls[0] and "torch==2.13.0" in calls[0]
    assert "--timeout 2" in calls[0]


def test_torch_falls_back_to_the_package_index(tmp_path):
    proc, calls = _make_torch(tmp_path, fail_index=True)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 2, calls
    assert "--index-url" in calls[0] and "--index-url" not in calls[1]
    assert calls[1].endswith("install torch==2.13.0")
    assert "using the package index" in proc.stdout


def test_default_torch_index_is_the_cpu_one():
    text = (REPO / "Makefile").read_text()
    assert "TORCH_INDEX ?= https://download.pytorch.org/whl/cpu" in text
    assert "$(MAKE) --no-print-directory torch" in text


PATH_REF = re.compile(r"(?<![\w/.{-])((?:nepa3d_jax|data_prep|configs|docs|launch|bench|tests)/"
                      r"[\w./-]*\w|[A-Z][A-Za-z_]*\.md)(?![\w{])")


def test_docs_cite_only_files_in_the_repository():
    missing = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for ref in sorted(set(PATH_REF.findall(doc.read_text()))):
            candidates = [REPO / ref, doc.parent / ref]
            if not any(c.exists() or c.with_suffix(".py").exists() for c in candidates):
                missing.append(f"{doc.relative_to(REPO)}: {ref}")
    assert not missing, missing
