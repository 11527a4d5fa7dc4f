# Helpers shared by the fault scripts (sourced, not run). $1 of the script: the bin directory.
set -u
bin=$1
tptop=$bin/tptop
tptrain=$bin/tptrain
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
name=$(basename "$0" .sh)
work=$(mktemp -d "/tmp/tptop-chaos-$name.XXXXXX")
export TPTOP_LOG_DIR=$work/logs
# The script's job name (with the supervisor's incarnations .r1, .r2), collected at exit.
job=chaos-$name-$$
jobs_to_collect=("$job")

# Every script leaves nothing behind: its jobs' processes ended, segments collected, temp dir gone.
cleanup() {
  for j in "${jobs_to_collect[@]}"; do
    for p in $(pgrep -f -- "--job $j( |$)" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  sleep 0.2
  for j in "${jobs_to_collect[@]}"; do
    "$tptop" gc --stale-after 0 "$j" "$j.r1" "$j.r2" >/dev/null 2>&1
    rm -f "/dev/shm/tptop.$j" "/dev/shm/tptop.$j.r1" "/dev/shm/tptop.$j.r2"
  done
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

# fail MESSAGE: print the line for this fault as failed and exit 1.
fail() {
  echo "chaos $name: FAILED: $*"
  exit 1
}

# report INJECTED DETECTED OUTCOME LOST
report() { echo "chaos $name: injected $1; detected $2; outcome $3; data lost $4"; }

# wait_until SECONDS COMMAND…: polls every 50 ms; non-zero on timeout.
wait_until() {
  local limit=$1; shift
  local deadline=$(( $(date +%s%3N) + limit * 1000 ))
  until "$@"; do
    [ "$(date +%s%3N)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
}

# The highest step job JOB reported (from `tptop ls`), 0 when unknown.
job_step() {
  "$tptop" ls 2>/dev/null | awk -v j="$1" '$1 == j { split($5, s, "/"); print s[1] + 0; found = 1 } END { if (!found) print 0 }'
}

# step_at_least JOB N
step_at_least() { [ "$(job_step "$1")" -ge "$2" ]; }

# The pid of world rank R of job JOB.
rank_pid() {
  local p
  for p in $(pgrep -f -- "tptrain.*--job $1( |$)"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$p"; return; fi
  done
}

# Records lost from the rings of JOB, from `tptop export` of its segment ("… (N already
# overwritten) …"; with no store to read, since an ended job's export prefers its stored run).
ring_loss() {
  TPTOP_RUNS="$work/no-store" "$tptop" export "$1" --format jsonl --output "$work/export.jsonl" 2>&1 \
    | sed -n 's/.*(\([0-9]*\) already overwritten).*/\1/p'
}

# The tiny model, 2-way tensor parallel, the same data and batch everywhere.
model_args=(--model tiny --tp 2 --batch 4 --seq 32 --threads 1)
train_args=("${model_args[@]}" --quiet)
