# shellcheck shell=bash
# What pipelines/slurm/submit and pipelines/slurm/job share: the run's Slurm settings and
# the submission of one round as jobs. Sourced; expects $here (this directory) and $run
# (the run directory, absolute).
#
# RUN/slurm/settings (written by submit, read by every job): fl_args, the fl-rounds
# arguments; sbatch_args, the options every job is submitted with; name, the prefix of the
# job names; retries, how often a failed job is requeued; max_tasks, how many shards train
# at once (0: no limit). RUN/slurm/logs/ has one log a job (one a shard for training),
# appended to by each attempt. RUN/slurm/stopped says why the run stopped, when a job
# stopped it (submit removes it); RUN/slurm/restarted-rRRRR-S marks that session S of
# round RRRR has been restarted.

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
# Whether the run has option $1 (one of those given, e.g. "--dp --secagg").
has_option() {
  local word
  for word in "${fl_args[@]}"; do [[ " $* " != *" $word "* ]] || return 0; done
  return 1
}
secure_run() { has_option --secagg --secagg-silo; }
# The steps after training, each its own job: a private round sums, releases, applies.
server_steps() {
  if has_option --dp; then echo "sum noise aggregate"; else echo aggregate; fi
}
# A secure round's steps, in order (fl-rounds --step), and which of them are arrays (one
# task a shard: the parties' steps).
secure_steps="session keys roster share relay mask masked-sum request reveal unmask"
party_step() { case "$1" in keys|share|mask|reveal) return 0 ;; *) return 1 ;; esac; }
# The prefix of round $1's jobs and logs in its secure session $2 (0 first): r0003 (the
# round that makes model-0003), r0003-s2 for its second session.
session_tag() {
  local tag
  tag=$(round_tag "$1")
  if [ "${2:-0}" = 0 ]; then echo "$tag"; else echo "$tag-s$(($2 + 1))"; fi
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
# Submits one job of round $n (the caller's locals): step $1 after dependency $2 ("" for
# none), an array of one task a shard for the parties' steps; its id in $last, its name
# and id appended to $ids.
chain_job() {
  local step=$1 dependency=$2 more=() log="$tag-$1.log" limit=""
  if [ "$step" = train ] || party_step "$step"; then
    [ "$max_tasks" = 0 ] || limit="%$max_tasks"
    more=(--array "0-$((shards - 1))$limit")
    log="$tag-$step-%a.log"
  fi
  [ -z "$dependency" ] || more+=(--dependency "$dependency" --kill-on-invalid-dep=yes)
  last=$(submit_job --job-name "$name-$tag-$step" "${more[@]}" --output "$(log_path "$log")" \
    "$here/job" "$here" "$run" "$step" "$n" "$attempt") || return $?
  ids+="${ids:+, }$step $last"
}
# Submits round $1 of $2 shards, in its secure session $3 (0, the first, by default), each
# step after the last one succeeded (afterok; a failed one cancels those after it), the
# evaluation last; the evaluation job submits the next round. A plain or private round:
# training (an array), then sum and noise with --dp, aggregate, eval. A secure round: every
# step of the protocol (fl-rounds --step session ... unmask; the parties' steps arrays,
# each after the server's step before it), where the server's step after an array runs
# once that step succeeded and every task of the array has ended, failed or not
# (afterany: a party that does not answer has dropped out, which the protocol tolerates).
submit_round() {
  local n=$1 shards=$2 attempt=${3:-0} tag last="" ids="" step server=""
  tag=$(session_tag "$n" "$attempt")
  mkdir -p -- "$run/slurm/logs"
  if secure_run; then
    # A round submitted afresh may restart its sessions again.
    [ "$attempt" != 0 ] || rm -rf -- "$run/slurm/restarted-$(round_tag "$n")-"*
    for step in $secure_steps; do
      if [ "$step" = session ]; then
        chain_job session "" || return $?
      elif party_step "$step"; then
        server=$last
        chain_job "$step" "afterok:$server" || return $?
      elif [ -n "$server" ]; then
        chain_job "$step" "afterok:$server,afterany:$last" || return $?
        server=""
      else
        chain_job "$step" "afterok:$last" || return $?
      fi
    done
    chain_job aggregate "afterok:$last" || return $?
  else
    chain_job train "" || return $?
    for step in $(server_steps); do chain_job "$step" "afterok:$last" || return $?; done
  fi
  chain_job eval "afterok:$last" || return $?
  if [ "$attempt" = 0 ]; then echo "fedrec-slurm: round $n: jobs $ids"; else echo "fedrec-slurm: round $n, session $((attempt + 1)): jobs $ids"; fi
}
# A secure step of round $1 in session $2 found too few parties left (88): its round starts
# again from a fresh session, the first job to find it so (a marker directory keeps the
# others from doing it twice), at most 3 sessions a round; then the run stops, saying so.
restart_round() {
  local n=$1 attempt=$2 marker
  marker="$run/slurm/restarted-$(round_tag "$n")-$attempt"
  mkdir -- "$marker" 2>/dev/null || return 0
  if [ "$attempt" -ge 2 ]; then
    echo "round $n: secure aggregation lost too many parties in $((attempt + 1)) sessions; the run stops here (resubmit to try the round again)" \
      | tee "$run/slurm/stopped" | sed 's/^/fedrec-slurm: /' >&2
    return 0
  fi
  echo "fedrec-slurm: round $n: too few parties left in session $((attempt + 1)); starting session $((attempt + 2))" >&2
  plan_and_submit "$n" $((attempt + 1))
}
# Runs fl-rounds --step plan and submits the round it names; says when the run is done.
# With a round $1 and session $2: submits that session of that round, which must be the
# plan's.
plan_and_submit() {
  local plan words
  plan=$("$fl_rounds" "${fl_args[@]}" --step plan) || return $?
  read -r -a words <<< "$plan"
  if [ -n "${1:-}" ] && [ "${words[0]:-} ${words[1]:-}" != "round $1" ]; then
    echo "fedrec-slurm: round $1 is not the next to run (fl-rounds --step plan: $plan)" >&2; return 70
  fi
  case "${words[0]:-}" in
    complete) echo "fedrec-slurm: $run: every round is complete" ;;
    budget-spent) echo "fedrec-slurm: $run: the privacy budget is spent; no more rounds (see $run/ledger.jsonl)" ;;
    round) submit_round "${words[1]}" "${words[3]}" "${2:-0}" ;;
    *) echo "fedrec-slurm: fl-rounds --step plan printed '$plan', not a plan" >&2; return 70 ;;
  esac
}
