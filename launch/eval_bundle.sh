#!/bin/bash
# Post-pretrain evaluation bundle for ONE checkpoint on one GPU node: ScanObjectNN
# classification, CPAC-UDF, and ModelNet40 classification when its cache exists (skipped
# with a logged reason otherwise). Results: results/<run_tag>/{cls_scanobjectnn,cpac_udf,
# cls_modelnet40,bundle}.json plus logs; compare runs with
#     python -m nepa3d_jax.eval.compare results/runA results/runB results/runC results/runD
#
#   qsub -v "OVERRIDES='ckpt=runs/pretrain_abcd_1024_runA run_tag=runA'" launch/eval_bundle.sh
#   qsub -v "OVERRIDES='ckpt=runs/runB/last.pt run_tag=runB_orig scan.full_spec_readout=True'" \
#        launch/eval_bundle.sh
#
# The config file and its `--config.*` overrides are the ONLY channel for settings: this
# script runs exactly  python -m nepa3d_jax.main --config $CONFIG [--config.a.b=v ...]
#
# Variables read here (qsub -v), all optional:
#   CONFIG      config file relative to REPO_DIR (default configs/eval_bundle.py)
#   OVERRIDES   space-separated overrides `a.b=v` or `--config.a.b=v` (ckpt=..., run_tag=...)
#   REPO_DIR    repository checkout (default: $PBS_O_WORKDIR, i.e. where qsub ran)
#   PYTHON      interpreter (default: $REPO_DIR/.venv/bin/python, else python3)
#   TASK_SETUP  file sourced before python (module load cuda ..., conda activate)
#   LOG_ROOT    default $REPO_DIR/logs; the job log goes to $LOG_ROOT/<jobid>_eval_bundle.log
#
# Site-specific PBS directives (group, queue) go on the qsub command line (-W group_list=..., -P).
#PBS -l rt_QF=1
#PBS -l walltime=24:00:00
#PBS -j oe
#PBS -N nepa3d_eval_bundle

set -euo pipefail

die() { echo "eval_bundle: ERROR: $*" >&2; exit 1; }

REPO_DIR="${REPO_DIR:-${PBS_O_WORKDIR:-$PWD}}"
cd "${REPO_DIR}" || die "REPO_DIR=${REPO_DIR} is not a directory"
CONFIG="${CONFIG:-configs/eval_bundle.py}"
[[ -f "${CONFIG}" ]] || die "config file ${CONFIG} not found under ${REPO_DIR}"

if [[ -n "${TASK_SETUP:-}" ]]; then
  [[ -f "${TASK_SETUP}" ]] || die "TASK_SETUP=${TASK_SETUP} not found"
  # shellcheck disable=SC1090
  source "${TASK_SETUP}"
fi
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "${REPO_DIR}/.venv/bin/python" ]]; then PYTHON="${REPO_DIR}/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi

# Overrides: normalise `a.b=v` to `--config.a.b=v` (same rule as nepa3d_jax.config.load_config).
read -r -a RAW_OVERRIDES <<< "${OVERRIDES:-}"
CONFIG_ARGS=()
for item in "${RAW_OVERRIDES[@]}"; do
  item="${item#--}"
  [[ "${item}" == config.* ]] || item="config.${item}"
  CONFIG_ARGS+=("--${item}")
done

JOB_ID="${PBS_JOBID:-manual$$}"
LOG_ROOT="${LOG_ROOT:-${REPO_DIR}/logs}"
mkdir -p "${LOG_ROOT}"
LOG_FILE="${LOG_ROOT}/${JOB_ID}_eval_bundle.log"

{
  echo "=== eval bundle: job ${JOB_ID} on $(hostname) at $(date -Is) ==="
  echo "command: ${PYTHON} -m nepa3d_jax.main --config ${CONFIG} ${CONFIG_ARGS[*]}"
} | tee "${LOG_FILE}"

status=0
"${PYTHON}" -u -m nepa3d_jax.main --config "${CONFIG}" "${CONFIG_ARGS[@]}" 2>&1 \
  | tee -a "${LOG_FILE}" || status=$?
echo "eval_bundle: finished with status ${status} (log ${LOG_FILE})" | tee -a "${LOG_FILE}"
exit "${status}"
