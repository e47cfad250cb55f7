"""The evaluation run log: stdout + file, nothing left in the logging registry afterwards."""

import logging

from nepa3d_jax.run_log import close_run_log, open_run_log


def test_run_log_writes_closes_and_leaves_no_logger(tmp_path, capsys):
    before = set(logging.Logger.manager.loggerDict)
    for i in range(3):
        log = open_run_log("nepa3d_jax.finetune_cls", str(tmp_path / "sub" / f"{i}.log"))
        log.info("line %d", i)
        close_run_log(log)
        assert log.handlers == []
    assert [(tmp_path / "sub" / f"{i}.log").read_text() for i in range(3)] == \
        ["line 0\n", "line 1\n", "line 2\n"]
    assert capsys.readouterr().out == "line 0\nline 1\nline 2\n"  # once each, not doubled
    assert set(logging.Logger.manager.loggerDict) == before


def test_run_log_appends_when_asked(tmp_path):
    path = str(tmp_path / "bundle.log")
    for word in ("first", "second"):
        log = open_run_log("nepa3d_jax.eval_bundle", path, mode="a")
        log.info(word)
        close_run_log(log)
    assert (tmp_path / "bundle.log").read_text() == "first\nsecond\n"
