# Shared helpers for the test cluster's and the project's scripts: where the
# cached binaries, the running cluster and the tools' logs live, and how a
# long step is run and reported. Sourced, never run.

ALL_TOOL_GROUPS=(kubernetes etcd kwok istioctl istioctl-previous istiod envoy certmanager krew datapath goreleaser actionlint)
TOOLS_CACHE=${KMS_STS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-kms-sts/tools}
CLUSTER_DIR=${KMS_STS_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-kms-sts/cluster}
CLUSTER_GOMOD=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gomod
CLUSTER_PYPI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pypi

LOGS_DIR=${KMS_STS_LOGS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-kms-sts/logs}

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A number of seconds as people read it: 42s, 3m 05s.
duration() {
  local s=$1
  if [ "$s" -lt 60 ]; then printf '%ds' "$s"; else printf '%dm %02ds' $((s / 60)) $((s % 60)); fi
}

# step WHAT FIRST_RUN_SECONDS COMMAND...
# Runs COMMAND (a program or a function) with its output in a log file under
# LOGS_DIR, saying what it does as it starts (with how long a first run takes
# on two cores, when given), that it is still at it every 30 seconds, and how
# long it took. On failure: the last lines of the log and where all of it is.
step() {
  local what=$1 estimate=$2 status=0 started=$SECONDS ticker
  shift 2
  mkdir -p "$LOGS_DIR"
  local file
  file="$LOGS_DIR/$(printf '%s' "$what" | tr -cs 'A-Za-z0-9.' '-' | sed 's/-*$//').log"
  if [ "$estimate" -gt 0 ]; then
    log "$what (a first run takes about $(duration "$estimate"); log: $file)"
  else
    log "$what (log: $file)"
  fi
  (
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while :; do
      sleep 30 & nap=$!
      wait "$nap"
      log "  ... still $what ($(duration $((SECONDS - started))) so far)"
    done
  ) &
  ticker=$!
  # In a subshell of its own with errexit on: a function's first failing
  # command fails the step (errexit would be ignored under `||`).
  local errexit=${-//[^e]/}
  set +e
  (set -e; "$@") >"$file" 2>&1
  status=$?
  [ -z "$errexit" ] || set -e
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    log "error: $what failed after $(duration $((SECONDS - started))); the last lines of $file:"
    tail -n 30 "$file" | sed 's/^/  | /' >&2
    return "$status"
  fi
  log "$what: done in $(duration $((SECONDS - started)))"
}

# beside COMMAND...: runs COMMAND (usually a `step`) in the background,
# beside what the script does next, in a process group of its own; the
# script's exit stops the whole group. `await_beside` waits for everything
# started so and fails when one of them failed. On two cores, a build that
# downloads, links or compiles one crate at a time leaves a core to another.
BESIDE=()
beside() {
  set -m
  "$@" &
  BESIDE+=("$!")
  set +m
  trap 'for pid in "${BESIDE[@]}"; do kill -- -"$pid" 2>/dev/null || true; done' EXIT
}
await_beside() {
  local pid status=0
  for pid in "${BESIDE[@]}"; do
    wait "$pid" || status=$?
  done
  BESIDE=()
  trap - EXIT
  return "$status"
}

# The cache directory of one tool group: its name plus a hash of the wrapper
# module's go.mod and go.sum (and, for groups with their own entry point, the
# Go sources), or of the pinned requirements of a group from PyPI, so any pin
# change selects a fresh directory.
tool_dir() {
  local group=$1 key
  if [ -d "$CLUSTER_PYPI/$group" ]; then
    key=$(cat "$CLUSTER_PYPI/$group/requirements.txt" | sha256sum | cut -c1-12)
    printf '%s/%s-%s\n' "$TOOLS_CACHE" "$group" "$key"
    return
  fi
  key=$(cat "$CLUSTER_GOMOD/$group"/go.mod "$CLUSTER_GOMOD/$group"/go.sum \
        $(find "$CLUSTER_GOMOD/$group" -name '*.go' | sort) | sha256sum | cut -c1-12)
  printf '%s/%s-%s\n' "$TOOLS_CACHE" "$group" "$key"
}

# The version a go.mod requires for a module.
module_version() {
  awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}
