"""Who am I in a multi-host job: pure functions from launcher variables to a `ProcessInfo`.

Three sources, in this order:
1. explicit variables for any launcher: NEPA3D_COORDINATOR (host:port), NEPA3D_NUM_PROCESSES,
   NEPA3D_PROCESS_ID, optional NEPA3D_LOCAL_DEVICE_IDS ("0,1");
2. PBS: coordinator = first unique host of $PBS_NODEFILE + a port derived from $PBS_JOBID,
   process id from the node-file line pbsdsh started this task on ($PBS_NODENUM, 0-based; the
   hex $PBS_TASKNUM is an id, not a rank) or else from this machine's host name;
   NEPA3D_PROCS_PER_NODE (default 1) processes per host;
3. neither: a single process.
Only launch topology travels through the environment, never a model or data setting.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import socket
import zlib
from typing import Mapping, Sequence

PORT_BASE = 10000   # below Linux's ephemeral range (32768+), so a busy client port never collides
PORT_SPAN = 20000


class TopologyError(RuntimeError):
    """The launcher variables do not describe a usable process layout (message says which)."""


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    num_processes: int = 1
    process_id: int = 0
    coordinator: str | None = None            # "host:port"; None for a single process
    local_device_ids: tuple[int, ...] | None = None
    source: str = "single"                    # single | env | pbs
    hosts: tuple[str, ...] = ()

    @property
    def multi_process(self) -> bool:
        return self.num_processes > 1


def read_node_file(path: str | None) -> list[str]:
    """Lines of $PBS_NODEFILE (one per slot; hosts may repeat). Raises on missing or empty."""
    if not path:
        raise TopologyError("PBS_NODEFILE is not set: not inside a PBS job")
    file = pathlib.Path(path)
    if not file.is_file():
        raise TopologyError(f"PBS_NODEFILE={path} does not exist")
    lines = [ln.strip() for ln in file.read_text().splitlines() if ln.strip()]
    if not lines:
        raise TopologyError(f"PBS_NODEFILE={path} is empty: no hosts allocated")
    return lines


def unique_hosts(lines: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def port_from_job_id(job_id: str) -> int:
    """Stable port per job, so concurrent jobs (Runs A-D) sharing a host do not collide."""
    digits = re.match(r"\d+", job_id or "")
    number = int(digits.group()) if digits else zlib.crc32((job_id or "").encode())
    return PORT_BASE + number % PORT_SPAN


def _host_names() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    return names | {n.split(".")[0] for n in names}


def slot_of_this_task(lines: Sequence[str], env: Mapping[str, str]) -> int:
    """Node-file line this task runs on: $PBS_NODENUM, else the first line naming this host."""
    node_num = env.get("PBS_NODENUM", "").strip()
    if node_num:
        if not node_num.isdigit() or int(node_num) >= len(lines):
            raise TopologyError(f"PBS_NODENUM={node_num!r} is not a line index of the node file "
                                f"({len(lines)} lines)")
        return int(node_num)
    names = _host_names()
    for index, line in enumerate(lines):
        if line in names or line.split(".")[0] in names:
            return index
    raise TopologyError(
        f"cannot determine this process's rank: PBS_NODENUM is not set (start tasks with pbsdsh) "
        f"and this host ({sorted(names)}) is not in the node file {unique_hosts(lines)}")


def _device_ids(slot_in_host: int, procs_per_node: int, devices_per_node: int | None):
    if procs_per_node == 1:
        return None  # every local device
    per_proc = (devices_per_node or procs_per_node) // procs_per_node
    if per_proc < 1:
        raise TopologyError(f"NEPA3D_DEVICES_PER_NODE={devices_per_node} is fewer than "
                            f"NEPA3D_PROCS_PER_NODE={procs_per_node}")
    return tuple(range(slot_in_host * per_proc, (slot_in_host + 1) * per_proc))


def pbs_process_info(env: Mapping[str, str]) -> ProcessInfo:
    lines = read_node_file(env.get("PBS_NODEFILE"))
    hosts = unique_hosts(lines)
    procs_per_node = int(env.get("NEPA3D_PROCS_PER_NODE", "1") or 1)
    devices_per_node = int(env["NEPA3D_DEVICES_PER_NODE"]) if env.get("NEPA3D_DEVICES_PER_NODE") else None
    num_processes = len(hosts) * procs_per_node
    if num_processes == 1:
        return ProcessInfo(source="pbs", hosts=tuple(hosts))
    slot = slot_of_this_task(lines, env)
    host = lines[slot]
    slot_in_host = lines[:slot].count(host)
    if slot_in_host >= procs_per_node:
        raise TopologyError(
            f"node-file line {slot} is slot {slot_in_host} of host {host}, but only "
            f"NEPA3D_PROCS_PER_NODE={procs_per_node} processes run per host (the task entry "
            "should not have started python here)")
    port = int(env.get("NEPA3D_COORDINATOR_PORT") or port_from_job_id(env.get("PBS_JOBID", "")))
    return ProcessInfo(
        num_processes=num_processes,
        process_id=hosts.index(host) * procs_per_node + slot_in_host,
        coordinator=f"{hosts[0]}:{port}",
        local_device_ids=_device_ids(slot_in_host, procs_per_node, devices_per_node),
        source="pbs", hosts=tuple(hosts))


def env_process_info(env: Mapping[str, str]) -> ProcessInfo:
    missing = [k for k in ("NEPA3D_COORDINATOR", "NEPA3D_NUM_PROCESSES", "NEPA3D_PROCESS_ID")
               if not env.get(k)]
    if missing:
        raise TopologyError(f"explicit launch needs {', '.join(missing)} as well "
                            "(NEPA3D_COORDINATOR=host:port, NEPA3D_NUM_PROCESSES, NEPA3D_PROCESS_ID)")
    try:
        num, pid = int(env["NEPA3D_NUM_PROCESSES"]), int(env["NEPA3D_PROCESS_ID"])
    except ValueError as err:
        raise TopologyError(f"NEPA3D_NUM_PROCESSES / NEPA3D_PROCESS_ID must be integers: {err}")
    if not 0 <= pid < num:
        raise TopologyError(f"NEPA3D_PROCESS_ID={pid} is outside [0, NEPA3D_NUM_PROCESSES={num})")
    if ":" not in env["NEPA3D_COORDINATOR"]:
        raise TopologyError(f"NEPA3D_COORDINATOR={env['NEPA3D_COORDINATOR']!r} must be host:port")
    ids = env.get("NEPA3D_LOCAL_DEVICE_IDS", "").strip()
    local = tuple(int(i) for i in ids.split(",")) if ids else None
    return ProcessInfo(num_processes=num, process_id=pid, coordinator=env["NEPA3D_COORDINATOR"],
                       local_device_ids=local, source="env")


def process_info_from_env(env: Mapping[str, str]) -> ProcessInfo:
    """The layout this process belongs to (see the module docstring for the precedence)."""
    if any(env.get(k) for k in ("NEPA3D_COORDINATOR", "NEPA3D_NUM_PROCESSES", "NEPA3D_PROCESS_ID")):
        return env_process_info(env)
    if env.get("PBS_NODEFILE") and env.get("PBS_JOBID"):
        return pbs_process_info(env)
    return ProcessInfo()
