# Shared helpers for the test cluster scripts: where the cached binaries and
# the running cluster live, and small utilities. Sourced, never run.

ALL_TOOL_GROUPS=(kubernetes etcd kwok istioctl istioctl-previous istiod envoy certmanager krew datapath goreleaser actionlint)
TOOLS_CACHE=${KMS_STS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-kms-sts/tools}
CLUSTER_DIR=${KMS_STS_CLUSTER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-kms-sts/cluster}
CLUSTER_GOMOD=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/gomod
CLUSTER_PYPI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pypi

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

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
