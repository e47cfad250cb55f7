#!/bin/bash
# Multi-node pretraining under PBS: one JAX process per host, fanned out with pbsdsh.
#
#   qsub -l rt_QF=2 -l walltime=72:00:00 -v CONFIG=configs/runA.py launch/pretrain_multinode.sh
#   qsub ... -v "CONFIG=configs/runA.py,OVERRIDES='train.batch_per_device=8 data.mix_seed=1'" ...
#
# The config file and its `--config.*` overrides are the ONLY channel for model and data
# settings. Every host runs exactly
#     python -m nepa3d_jax.main --config $CONFIG [--config.a.b=v ...]
# and finds its rank, the coordinator and the process count from the node file (see docs/pbs.md).
#
# Variables read here (qsub -v), all optional except CONFIG:
#   CONFIG          config file, relative to REPO_DIR (required)
#   OVERRIDES       space-separated overrides `a.b=v` or `--config.a.b=v`
#   TAG             log folder tag (default: the config file name, e.g. runA)
#   REPO_DIR        repository checkout (default: $PBS_O_WORKDIR, i.e. where qsub ran)
#   PYTHON          interpreter (default: $REPO_DIR/.venv/bin/python, else python3)
#   TASK_SETUP      file each task sources before python (module load cuda ..., conda activate)
#   PROCS_PER_NODE  JAX processes per host (default 1 = one process drives all local GPUs; >1
#                   needs the node file to list each host that many times, e.g. mpiprocs=4)
#   MODULE          python module to run (default nepa3d_jax.main; nepa3d_jax.parallel.selftest
#                   checks the fabric in seconds)
#   LOG_ROOT        default $REPO_DIR/logs; per-host logs go to $LOG_ROOT/<jobid>_<tag>/
#   PBSDSH          pbsdsh command (default pbsdsh; tests use launch/fake_pbsdsh)
#   STAGE_DIR       node-local folder (e.g. '$TMPDIR', quoted: expanded on each node) to copy
#                   the corpora to once per node before training; sets config.data.stage_dir
#
# Site-specific PBS directives (group, queue) go on the qsub command line (-W group_list=..., -P).
#PBS -l rt_QF=2
#PBS -l walltime=72:00:00
#PBS -j oe
#PBS -N nepa3d_pretrain

set -euo pipefail

die() { echo "pretrain_multinode: ERROR: $*" >&2; exit 1; }

REPO_DIR="${REPO_DIR:-${PBS_O_WORKDIR:-$PWD}}"
cd "${REPO_DIR}" || die "REPO_DIR=${REPO_DIR} is not a directory"
REPO_DIR="$(pwd -P)"

[[ -n "${CONFIG:-}" ]] || die "CONFIG is not set (qsub -v CONFIG=configs/runA.py ...)"
[[ -f "${CONFIG}" ]] || die "config file ${CONFIG} not found under ${REPO_DIR}"
[[ -n "${PBS_NODEFILE:-}" ]] || die "PBS_NODEFILE is not set: submit this script with qsub"
[[ -s "${PBS_NODEFILE}" ]] || die "node file PBS_NODEFILE=${PBS_NODEFILE} is missing or empty"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "${REPO_DIR}/.venv/bin/python" ]]; then PYTHON="${REPO_DIR}/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi
JOB_ID="${PBS_JOBID:-manual$$}"
TAG="${TAG:-$(basename "${CONFIG}" .py)}"
MODULE="${MODULE:-nepa3d_jax.main}"
PROCS_PER_NODE="${PROCS_PER_NODE:-1}"
PBSDSH="${PBSDSH:-pbsdsh}"
LOG_ROOT="${LOG_ROOT:-${REPO_DIR}/logs}"
RUN_LOG_DIR="${LOG_ROOT}/${JOB_ID}_${TAG}"
mkdir -p "${RUN_LOG_DIR}"

# Overrides: normalise `a.b=v` to `--config.a.b=v` (same rule as nepa3d_jax.config.load_config).
read -r -a RAW_OVERRIDES <<< "${OVERRIDES:-}"
CONFIG_ARGS=()
for item in "${RAW_OVERRIDES[@]}"; do
  item="${item#--}"
  [[ "${item}" == config.* ]] || item="config.${item}"
  CONFIG_ARGS+=("--${item}")
done
if [[ -n "${STAGE_DIR:-}" ]]; then
  CONFIG_ARGS+=("--config.data.stage_dir=${STAGE_DIR}")
fi

# Hosts: unique names of the node file, in order; the first one hosts the coordinator.
NODE_FILE="${RUN_LOG_DIR}/nodefile"
cp "${PBS_NODEFILE}" "${NODE_FILE}"
awk 'NF && !seen[$1]++ {print $1}' "${NODE_FILE}" > "${RUN_LOG_DIR}/hosts.txt"
NUM_HOSTS="$(wc -l < "${RUN_LOG_DIR}/hosts.txt")"
NUM_HOSTS="${NUM_HOSTS// /}"
(( NUM_HOSTS > 0 )) || die "node file PBS_NODEFILE=${PBS_NODEFILE} lists no hosts (blank lines only)"
[[ "${PROCS_PER_NODE}" =~ ^[1-9][0-9]*$ ]] || die "PROCS_PER_NODE=${PROCS_PER_NODE} is not a positive integer"
# pbsdsh starts one task per node-file line and the first PROCS_PER_NODE lines of a host start
# python: a host listed fewer times would leave the others waiting in jax.distributed until its
# timeout ("another task died"), so it is refused here.
SHORT="$(awk -v want="${PROCS_PER_NODE}" 'NF {n[$1]++} END {for (h in n) if (n[h] < want) {print h " is listed " n[h] " time(s)"; exit}}' "${NODE_FILE}")"
[[ -z "${SHORT}" ]] || die "PROCS_PER_NODE=${PROCS_PER_NODE} but in node file ${PBS_NODEFILE} ${SHORT}: list each host at least PROCS_PER_NODE times (e.g. qsub -l select=N:mpiprocs=${PROCS_PER_NODE}) or lower PROCS_PER_NODE"
COORDINATOR_HOST="$(head -n 1 "${RUN_LOG_DIR}/hosts.txt")"
JOB_NUMBER="$(printf '%s' "${JOB_ID}" | sed -E 's/^([0-9]*).*/\1/')"
# A port per job (10000-29999, below the ephemeral range), so Runs A-D never collide.
COORDINATOR_PORT="${COORDINATOR_PORT:-$((10000 + 10#${JOB_NUMBER:-0} % 20000))}"
NUM_PROCESSES="$((NUM_HOSTS * PROCS_PER_NODE))"

# Fail here, on one host, in a second, rather than on every host after start-up.
"${PYTHON}" -m nepa3d_jax.config --config "${CONFIG}" "${CONFIG_ARGS[@]}" \
  > "${RUN_LOG_DIR}/config.resolved.json" || die "config ${CONFIG} is invalid (see above)"

# pbsdsh tasks start in $HOME with the job's original environment, so everything a task needs
# is written here and the task entry sources it.
TASK_FILE="${RUN_LOG_DIR}/task.env"
{
  echo "# written by launch/pretrain_multinode.sh for job ${JOB_ID}"
  printf 'REPO_DIR=%q\n' "${REPO_DIR}"
  printf 'PYTHON=%q\n' "${PYTHON}"
  printf 'MODULE=%q\n' "${MODULE}"
  printf 'CONFIG=%q\n' "${CONFIG}"
  if (( ${#CONFIG_ARGS[@]} )); then
    printf 'CONFIG_ARGS=(%s)\n' "$(printf '%q ' "${CONFIG_ARGS[@]}")"
  else
    echo 'CONFIG_ARGS=()'
  fi
  printf 'TASK_SETUP=%q\n' "${TASK_SETUP:-}"
  printf 'RUN_LOG_DIR=%q\n' "${RUN_LOG_DIR}"
  printf 'NODE_FILE=%q\n' "${NODE_FILE}"
  printf 'JOB_ID=%q\n' "${JOB_ID}"
  printf 'PROCS_PER_NODE=%q\n' "${PROCS_PER_NODE}"
  printf 'COORDINATOR=%q\n' "${COORDINATOR_HOST}:${COORDINATOR_PORT}"
  printf 'COORDINATOR_PORT=%q\n' "${COORDINATOR_PORT}"
  printf 'NUM_PROCESSES=%q\n' "${NUM_PROCESSES}"
} > "${TASK_FILE}"

echo "job ${JOB_ID}: ${NUM_HOSTS} host(s) x ${PROCS_PER_NODE} process(es), coordinator ${COORDINATOR_HOST}:${COORDINATOR_PORT}"
echo "command: python -m ${MODULE} --config ${CONFIG} ${CONFIG_ARGS[*]}"
echo "logs:    ${RUN_LOG_DIR}/<host>.<slot>.log"

rm -f "${RUN_LOG_DIR}"/*.exit
status=0
"${PBSDSH}" -- "$(command -v bash)" "${REPO_DIR}/launch/task_entry.sh" "${TASK_FILE}" || status=$?

# Every task leaves <host>.<slot>.exit; a missing or non-zero one fails the job.
started=0
for exit_file in "${RUN_LOG_DIR}"/*.exit; do
  [[ -e "${exit_file}" ]] || continue
  started=$((started + 1))
  code="$(cat "${exit_file}")"
  if [[ "${code}" != 0 ]]; then
    echo "task $(basename "${exit_file}" .exit) exited with ${code}: see ${exit_file%.exit}.log" >&2
    status=1
  fi
done
if [[ "${started}" != "${NUM_PROCESSES}" ]]; then
  echo "expected ${NUM_PROCESSES} processes, ${started} reported an exit status" >&2
  status=1
fi
echo "job ${JOB_ID}: finished with status ${status}"
exit "${status}"
