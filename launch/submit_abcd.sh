#!/bin/bash
# Submit the A/B/C/D pretraining matrix: four jobs in parallel, same node count and walltime.
#
#   launch/submit_abcd.sh --nodes 2 --walltime 72:00:00
#   launch/submit_abcd.sh --nodes 8 --depend afterok:12345.pbs1 --qsub_arg "-P gXXXX" --dry_run
#   launch/submit_abcd.sh --runs A,C --override train.epochs=50
#   launch/submit_abcd.sh --seeds 0,1,2        # 3 pretraining seeds per run: 12 jobs
#
# Options:
#   --nodes N           nodes per run (default 2)
#   --walltime HH:MM:SS (default 72:00:00)
#   --resource NAME     node resource of `-l NAME=N` (default rt_QF; e.g. select for generic PBS)
#   --depend SPEC       `-W depend=SPEC` on every job (e.g. afterok:12345.pbs1)
#   --runs A,B,C,D      which runs (configs/run<X>.py; "A B C D" also works)
#   --override A.B=V    a --config override applied to every run (repeatable)
#   --seeds 0,1,2       pretraining seeds: one job per run and seed, each with seed=S and
#                       data.mix_seed=S, workdir <prefix>run<X>_seed<S>, tag run<X>_seed<S>
#                       ("0 1 2" also works)
#   --workdir_prefix P  prefix of those workdirs (default runs/pretrain_abcd_1024_)
#   --qsub_arg ARG      extra qsub argument(s), split on spaces (repeatable)
#   --procs_per_node K  PROCS_PER_NODE for the launcher (default 1)
#   --no_check          skip validating the configs before submitting
#   --dry_run           print the qsub commands, submit nothing
# Settings of the runs themselves live in configs/run*.py; nothing else is forwarded.
set -euo pipefail

die() { echo "submit_abcd: ERROR: $*" >&2; exit 1; }

NODES=2
WALLTIME=72:00:00
RESOURCE=rt_QF
DEPEND=""
RUNS="A B C D"
OVERRIDES=()
QSUB_ARGS=()
PROCS_PER_NODE=1
CHECK=1
DRY_RUN=0
SEEDS=""
WORKDIR_PREFIX="runs/pretrain_abcd_1024_"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) NODES="$2"; shift 2 ;;
    --walltime) WALLTIME="$2"; shift 2 ;;
    --resource) RESOURCE="$2"; shift 2 ;;
    --depend) DEPEND="$2"; shift 2 ;;
    --runs) RUNS="${2//,/ }"; shift 2 ;;
    --override) OVERRIDES+=("$2"); shift 2 ;;
    --seeds) SEEDS="${2//,/ }"; shift 2 ;;
    --workdir-prefix|--workdir_prefix) WORKDIR_PREFIX="$2"; shift 2 ;;
    --qsub-arg|--qsub_arg) read -r -a extra <<< "$2"; QSUB_ARGS+=("${extra[@]}"); shift 2 ;;
    --procs-per-node|--procs_per_node) PROCS_PER_NODE="$2"; shift 2 ;;
    --no-check|--no_check) CHECK=0; shift ;;
    --dry-run|--dry_run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "${NODES}" =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive integer, got ${NODES}"
for seed in ${SEEDS}; do
  [[ "${seed}" =~ ^[0-9]+$ ]] || die "--seeds takes non-negative integers, got ${seed}"
done
[[ "${WORKDIR_PREFIX}" != *[,\ ]* ]] || die "--workdir-prefix must not contain a comma or space"
for item in "${OVERRIDES[@]}"; do
  [[ "${item}" != *[,\ ]* ]] || die "override ${item} contains a comma or space (qsub -v cannot carry it); put it in a config file"
done

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${REPO_DIR}"
PYTHON="${PYTHON:-${REPO_DIR}/.venv/bin/python}"
[[ -x "${PYTHON}" ]] || PYTHON="$(command -v python3)"

# Validate every run before submitting any, so a typo never costs a queue slot.
if (( CHECK )); then
  for run in ${RUNS}; do
    config="configs/run${run}.py"
    [[ -f "${config}" ]] || die "${config} not found"
    args=()
    for item in "${OVERRIDES[@]}"; do args+=("--config.${item#--config.}"); done
    "${PYTHON}" -m nepa3d_jax.config --config "${config}" --devices "$((NODES * 4))" --quiet "${args[@]}" \
      || die "${config} is invalid"
  done
fi

submit() {  # submit <run> <tag> <override>...
  local run="$1" tag="$2"
  shift 2
  local overrides=("${OVERRIDES[@]}" "$@")
  local vars="CONFIG=configs/run${run}.py,TAG=${tag},PROCS_PER_NODE=${PROCS_PER_NODE}"
  if (( ${#overrides[@]} )); then
    vars+=",OVERRIDES='${overrides[*]}'"
  fi
  local cmd=(qsub -N "nepa3d_${tag}" -l "${RESOURCE}=${NODES}" -l "walltime=${WALLTIME}")
  [[ -z "${DEPEND}" ]] || cmd+=(-W "depend=${DEPEND}")
  cmd+=("${QSUB_ARGS[@]}" -v "${vars}" launch/pretrain_multinode.sh)
  if (( DRY_RUN )); then
    printf '%q ' "${cmd[@]}"; echo
  else
    local job_id
    job_id="$("${cmd[@]}")"
    echo "${tag}: ${job_id}"
  fi
}

for run in ${RUNS}; do
  if [[ -z "${SEEDS}" ]]; then
    submit "${run}" "run${run}"
  else
    for seed in ${SEEDS}; do
      submit "${run}" "run${run}_seed${seed}" "seed=${seed}" "data.mix_seed=${seed}" \
        "workdir=${WORKDIR_PREFIX}run${run}_seed${seed}"
    done
  fi
done
