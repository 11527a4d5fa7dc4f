#!/usr/bin/env bash
# Prints a Prometheus file_sd target list: `tptop serve` on every host of an MPI hostfile
# (lines "host slots=N"; comments and blank lines skipped). The first host is node 0.
#   targets-from-hostfile.sh HOSTFILE [PORT] > targets/tptop.json
set -euo pipefail
hostfile=${1:?usage: targets-from-hostfile.sh HOSTFILE [PORT]}
port=${2:-9400}
awk -v port="$port" '
  /^[[:space:]]*(#|$)/ { next }
  { hosts[n++] = $1 }
  END {
    printf "[\n"
    for (i = 0; i < n; i++)
      printf "  {\"targets\": [\"%s:%s\"], \"labels\": {\"node_index\": \"%d\"}}%s\n", hosts[i], port, i, (i < n - 1 ? "," : "")
    printf "]\n"
  }' "$hostfile"
