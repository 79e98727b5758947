# shellcheck shell=bash
# What pipelines/slurm/submit and pipelines/slurm/job share: the run's Slurm settings and
# the submission of one round as jobs. Sourced; expects $here (this directory) and $run
# (the run directory, absolute).
#
# RUN/slurm/settings (written by submit, read by every job): fl_args, the fl-rounds
# arguments; sbatch_args, the options every job is submitted with; name, the prefix of the
# job names; retries, how often a failed job is requeued; max_tasks, how many shards train
# at once (0: no limit). RUN/slurm/logs/ has one log a job (one a shard for training),
# appended to by each attempt.

fl_rounds="$here/../fl-rounds"
settings_file() { echo "$run/slurm/settings"; }
load_settings() {
  local file
  file=$(settings_file)
  [ -r "$file" ] || { echo "fedrec-slurm: $file is missing: submit the run with pipelines/slurm/submit" >&2; exit 66; }
  # shellcheck source=/dev/null
  source "$file"
}
# A round's tag in job and log names: r0003 makes model-0003.
round_tag() { printf 'r%04d' "$1"; }
# The steps after training, each its own job: a private round sums, releases, applies;
# a secure round has trained into its sum.
server_steps() {
  local word dp=0 secagg=0
  for word in "${fl_args[@]}"; do
    case "$word" in --dp) dp=1 ;; --secagg|--secagg-silo) secagg=1 ;; esac
  done
  if [ "$dp" = 1 ] && [ "$secagg" = 0 ]; then echo "sum noise aggregate"; else echo aggregate; fi
}
client_step() {
  local word
  for word in "${fl_args[@]}"; do
    case "$word" in --secagg|--secagg-silo) echo secure; return ;; esac
  done
  echo train
}
# sbatch without the submitting job's own SLURM_* variables (a job submitted from a job
# would otherwise inherit its restart count); prints the job id.
submit_job() {
  local unset_args=() variable out
  for variable in ${!SLURM_@}; do [ "$variable" = SLURM_CONF ] || unset_args+=(-u "$variable"); done
  out=$(env "${unset_args[@]}" sbatch --parsable --requeue --open-mode=append --comment "fedrec $run" \
    "${sbatch_args[@]}" "$@") || return $?
  echo "${out%%;*}"
}
# A log path for sbatch --output: the run's % doubled (sbatch's patterns), then $1.
log_path() { echo "${run//%/%%}/slurm/logs/$1"; }
# Submits round $1 of $2 shards: training (an array, one task a shard, or the secure
# aggregation), then each server step and the evaluation, each after the last one
# succeeded (afterok; a failed one cancels those after it). The evaluation job submits the
# next round.
submit_round() {
  local n=$1 shards=$2 tag first id ids step limit=""
  tag=$(round_tag "$n")
  mkdir -p -- "$run/slurm/logs"
  first=$(client_step)
  if [ "$first" = train ]; then
    [ "$max_tasks" = 0 ] || limit="%$max_tasks"
    id=$(submit_job --job-name "$name-$tag-train" --array "0-$((shards - 1))$limit" \
      --output "$(log_path "$tag-train-%a.log")" "$here/job" "$here" "$run" train "$n") || return $?
  else
    id=$(submit_job --job-name "$name-$tag-secure" --output "$(log_path "$tag-secure.log")" \
      "$here/job" "$here" "$run" secure "$n") || return $?
  fi
  ids="$first $id"
  for step in $(server_steps) eval; do
    id=$(submit_job --job-name "$name-$tag-$step" --dependency "afterok:$id" --kill-on-invalid-dep=yes \
      --output "$(log_path "$tag-$step.log")" "$here/job" "$here" "$run" "$step" "$n") || return $?
    ids+=", $step $id"
  done
  echo "fedrec-slurm: round $n: jobs $ids"
}
# Runs fl-rounds --step plan and submits the round it names; says when the run is done.
plan_and_submit() {
  local plan words
  plan=$("$fl_rounds" "${fl_args[@]}" --step plan) || return $?
  read -r -a words <<< "$plan"
  case "${words[0]:-}" in
    complete) echo "fedrec-slurm: $run: every round is complete" ;;
    budget-spent) echo "fedrec-slurm: $run: the privacy budget is spent; no more rounds (see $run/ledger.jsonl)" ;;
    round) submit_round "${words[1]}" "${words[3]}" ;;
    *) echo "fedrec-slurm: fl-rounds --step plan printed '$plan', not a plan" >&2; return 70 ;;
  esac
}
