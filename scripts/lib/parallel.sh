# Sourced by scripts/fuzz and scripts/mutation-check: runs one shell function over a
# list of items, a bounded number at a time, and prints what each printed in the list's
# order once all are done.
#
#   run_parallel JOBS FUNCTION ITEM...
#
# FUNCTION ITEM runs in the background with its stdout and stderr kept apart in a
# temporary directory; at most JOBS run at once. Afterwards each item's stdout goes to
# stdout and its stderr to stderr, in item order, and `parallel_failures` holds how many
# calls exited non-zero. Needs bash 5.1 or later (`wait -n` on already-ended jobs).
run_parallel() {
  local jobs=$1 function=$2 dir i running=0
  shift 2
  local items=("$@")
  dir=$(mktemp -d "${TMPDIR:-/tmp}/aegis-parallel-XXXXXX")
  parallel_failures=0
  for i in "${!items[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
      wait -n || parallel_failures=$((parallel_failures + 1))
      running=$((running - 1))
    fi
    "$function" "${items[$i]}" > "$dir/$i.out" 2> "$dir/$i.err" &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do
    wait -n || parallel_failures=$((parallel_failures + 1))
    running=$((running - 1))
  done
  for i in "${!items[@]}"; do cat "$dir/$i.out"; cat "$dir/$i.err" >&2; done
  rm -rf "$dir"
}
