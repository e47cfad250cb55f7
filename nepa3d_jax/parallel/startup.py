"""One call at the top of `main`: join the multi-controller runtime (or do nothing when alone).

JAX's cluster auto-detection knows SLURM, Open MPI and TPU pods but not PBS, so every argument
of `jax.distributed.initialize` is passed explicitly from `topology.process_info_from_env`.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Mapping

import jax

from nepa3d_jax.parallel.topology import ProcessInfo, TopologyError, process_info_from_env

DEFAULT_TIMEOUT_S = 300


def _split(coordinator: str) -> tuple[str, int]:
    host, _, port = coordinator.rpartition(":")
    return host.strip("[]"), int(port)


def _check_resolvable(coordinator: str) -> None:
    host, _ = _split(coordinator)
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as err:
        raise TopologyError(f"coordinator host {host!r} (from {coordinator}) cannot be resolved: "
                            f"{err}") from err


def wait_for_coordinator(info: ProcessInfo, timeout_s: float) -> None:
    """Polls the coordinator's port; raises a clear error instead of XLA's fatal abort.

    (A non-zero process whose coordinator never appears is killed by the XLA client with a stack
    trace; checking the TCP port first turns that into one readable line.)
    """
    host, port = _split(info.coordinator)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=2.0):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"process {info.process_id} of {info.num_processes} could not join the "
                    f"coordinator {info.coordinator} within {timeout_s:g} s (source: {info.source}; "
                    f"hosts {list(info.hosts) or '?'}): {err}") from err
            time.sleep(0.25)


def initialize(env: Mapping[str, str] | None = None,
               timeout_s: int | None = None) -> ProcessInfo:
    """Joins all processes of the job; returns this process's place in it.

    Must run before anything touches a JAX device. `timeout_s` (default $NEPA3D_INIT_TIMEOUT or
    300 s) bounds the wait for the coordinator and the other processes; on expiry a
    RuntimeError names the coordinator and this process's rank.
    """
    env = os.environ if env is None else env
    info = process_info_from_env(env)
    if not info.multi_process:
        return info
    timeout_s = int(timeout_s or env.get("NEPA3D_INIT_TIMEOUT") or DEFAULT_TIMEOUT_S)
    _check_resolvable(info.coordinator)
    print(f"nepa3d_jax.parallel: process {info.process_id} of {info.num_processes} joining "
          f"{info.coordinator} (source: {info.source}, timeout {timeout_s} s)", file=sys.stderr,
          flush=True)
    if info.process_id != 0:
        wait_for_coordinator(info, timeout_s)
    # CPU-only jobs (and the tests) need cross-process CPU collectives; harmless on GPU.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=info.coordinator,
            num_processes=info.num_processes,
            process_id=info.process_id,
            local_device_ids=list(info.local_device_ids) if info.local_device_ids else None,
            initialization_timeout=timeout_s,
        )
    except Exception as err:  # XLA raises its own runtime error types
        raise RuntimeError(
            f"process {info.process_id} of {info.num_processes} could not join the coordinator "
            f"{info.coordinator} within {timeout_s} s (source: {info.source}; hosts "
            f"{list(info.hosts) or '?'}): {err}") from err
    return info
