#!/bin/bash
# One pbsdsh task: `task_entry.sh <RUN_LOG_DIR>/task.env` (written by pretrain_multinode.sh).
#
# pbsdsh starts one task per node-file line, in $HOME, with the job's original environment and
# PBS_NODENUM = that line's index. The first PROCS_PER_NODE lines of each host start python; the
# others exit at once. The rank, coordinator and process count are then computed by
# nepa3d_jax.parallel from the node file, PBS_NODENUM and the coordinator port given here.
set -euo pipefail

TASK_FILE="${1:?usage: task_entry.sh TASK_FILE}"
# shellcheck source=/dev/null
source "${TASK_FILE}"

SLOT="${PBS_NODENUM:?PBS_NODENUM is not set: start this script through pbsdsh}"
HOST="$(awk -v n="${SLOT}" 'NF { if (i++ == n) { print $1; exit } }' "${NODE_FILE}")"
[[ -n "${HOST}" ]] || { echo "task_entry: PBS_NODENUM=${SLOT} is not a line of ${NODE_FILE}" >&2; exit 1; }
# How many earlier lines name the same host: this task's slot on its host.
SLOT_IN_HOST="$(awk -v n="${SLOT}" -v h="${HOST}" 'NF { if (i++ == n) exit; if ($1 == h) c++ } END { print c + 0 }' "${NODE_FILE}")"
if (( SLOT_IN_HOST >= PROCS_PER_NODE )); then
  exit 0  # a surplus line of a host that already runs its processes
fi

LOG="${RUN_LOG_DIR}/${HOST}.${SLOT_IN_HOST}.log"
EXIT_FILE="${RUN_LOG_DIR}/${HOST}.${SLOT_IN_HOST}.exit"
exec > "${LOG}" 2>&1

cd "${REPO_DIR}"
if [[ -n "${TASK_SETUP}" ]]; then
  # shellcheck source=/dev/null
  source "${TASK_SETUP}"
fi
export PBS_NODEFILE="${NODE_FILE}" PBS_JOBID="${JOB_ID}" PBS_NODENUM="${SLOT}"
export NEPA3D_PROCS_PER_NODE="${PROCS_PER_NODE}" NEPA3D_COORDINATOR_PORT="${COORDINATOR_PORT}"
export PYTHONPATH="${REPO_DIR}${PYTHONPATH:+:${PYTHONPATH}}"

echo "task on ${HOST} (node-file line ${SLOT}, slot ${SLOT_IN_HOST}); coordinator ${COORDINATOR}, ${NUM_PROCESSES} processes"
echo "+ python -m ${MODULE} --config ${CONFIG} ${CONFIG_ARGS[*]}"
status=0
"${PYTHON}" -m "${MODULE}" --config "${CONFIG}" "${CONFIG_ARGS[@]}" || status=$?
echo "${status}" > "${EXIT_FILE}"
exit "${status}"
