"""The log of one evaluation run: to stdout and a file, closed when the run ends.

The logger is a standalone `logging.Logger` (not registered with `logging.getLogger`), so
repeated runs in one process leave nothing behind: no uniquely named loggers accumulating in
the logging registry, no handler that outlives its run, no lines doubled into a parent.
"""

from __future__ import annotations

import logging
import os
import sys


def open_run_log(name: str, path: str = "", fmt: str = "%(message)s", datefmt: str | None = None,
                 mode: str = "w") -> logging.Logger:
    """INFO logger writing to stdout and (when `path` is given) to `path`; close it after."""
    log = logging.Logger(name, logging.INFO)
    formatter = logging.Formatter(fmt, datefmt)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handlers.append(logging.FileHandler(path, mode=mode))
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    return log


def close_run_log(log: logging.Logger) -> None:
    """Flushes and closes every handler (the file is complete afterwards)."""
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)
