#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3, through the Go module proxy) and caches the
# binary keyed by version, like the control plane. Prints the binary's path on the last line of
# stdout; progress goes to stderr. A warm cache builds nothing. Called lazily by the chart test.
#
#   PORTICO_HELM_VERSION  a helm.sh/helm/v3 release (default below)
#   PORTICO_CACHE_DIR     where binaries are kept (default: <repo>/.cache)
#   HELM                  an existing helm binary: used as is, nothing is built
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${PORTICO_CACHE_DIR:-$repo/.cache}
version=${PORTICO_HELM_VERSION:-v3.22.0}
log() { printf '[helm] %s\n' "$*" >&2; }

if [[ -n ${HELM:-} ]]; then
  [[ -x $HELM ]] || { log "HELM=$HELM is not executable"; exit 1; }
  echo "$HELM"
  exit 0
fi

out=$cache/helm-$version
if [[ -x $out/helm ]]; then
  log "helm $version cached"
  echo "$out/helm"
  exit 0
fi

command -v go >/dev/null || { log "Go is required to build helm (https://go.dev/dl)"; exit 1; }
log "building helm $version from helm.sh/helm/v3 (first run only, a few minutes) ..."
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
work=$(mktemp -d "$cache/helm-$version.XXXXXX.tmp")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
GOBIN=$work go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" "helm.sh/helm/v3/cmd/helm@$version" >&2
mkdir -p "$out"
mv "$work/helm" "$out/helm"
log "built helm $version in $(( $(date +%s) - started )) s: $out/helm"
echo "$out/helm"
