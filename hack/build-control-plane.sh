#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager) from their
# Go modules through the Go module proxy, and caches the binaries keyed by version.
#
# Prints the directory holding the three binaries on its last line of stdout; progress goes
# to stderr. A warm cache builds nothing.
#
#   PORTICO_K8S_VERSION   a k8s.io/kubernetes release (default: the newest stable one the proxy
#                         serves whose go directive this Go accepts; falls back to older ones
#                         if the newest does not build)
#   PORTICO_ETCD_VERSION  a go.etcd.io/etcd/server/v3 release (default: the newest v3.6.x)
#   PORTICO_CACHE_DIR     where binaries are kept (default: <repo>/.cache)
#   KUBEBUILDER_ASSETS    a directory that already has etcd + kube-apiserver (+ kube-controller-manager,
#                         optional: without it the control plane runs without its controllers):
#                         used as is, nothing is built
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${PORTICO_CACHE_DIR:-$repo/.cache}
log() { printf '[control-plane] %s\n' "$*" >&2; }

if [[ -n ${KUBEBUILDER_ASSETS:-} ]]; then
  for b in etcd kube-apiserver; do
    [[ -x $KUBEBUILDER_ASSETS/$b ]] || { log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no $b"; exit 1; }
  done
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

command -v go >/dev/null || { log "Go is required to build the control plane (https://go.dev/dl)"; exit 1; }
go_version=$(go env GOVERSION | sed 's/^go//')
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

# version_le A B: true when Go version A <= B (numeric, dotted).
version_le() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]; }

stable_versions() { # newest first
  go list -m -versions "$1" 2>/dev/null | tr ' ' '\n' | grep -E '^v[0-9]+\.[0-9]+\.[0-9]+$' | sort -rV
}

newest_cached() { # newest version dir under $cache/$1-* that has all binaries
  local prefix=$1; shift
  local d
  for d in $(ls -d "$cache/$prefix"-v* 2>/dev/null | sort -rV); do
    local ok=1
    for b in "$@"; do [[ -x $d/$b ]] || ok=0; done
    (( ok )) && { echo "$d"; return 0; }
  done
  return 1
}

# ---- etcd -------------------------------------------------------------------------------
build_etcd() {
  local version=$1 out=$cache/etcd-$1
  [[ -x $out/etcd ]] && return 0
  log "building etcd $version from go.etcd.io/etcd/server/v3 (first run only)..."
  local work; work=$(mktemp -d)
  cat >"$work/go.mod" <<MOD
module portico.dev/controlplane/etcd

go $go_version

require go.etcd.io/etcd/server/v3 $version
MOD
  local pkg=go.etcd.io/etcd/api/v3/version
  (cd "$work" && go mod download go.etcd.io/etcd/server/v3 >&2 \
    && go get go.etcd.io/etcd/server/v3@"$version" >&2 \
    && go build -trimpath -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3 >&2) || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "etcd $version ready: $out/etcd"
}

resolve_etcd() {
  if [[ -n ${PORTICO_ETCD_VERSION:-} ]]; then echo "$PORTICO_ETCD_VERSION"; return; fi
  local v; v=$(stable_versions go.etcd.io/etcd/server/v3 | grep '^v3\.6\.' | head -n1 || true)
  if [[ -z $v ]]; then
    local d; d=$(newest_cached etcd etcd) || { log "cannot list etcd versions from the Go module proxy and nothing is cached"; exit 1; }
    v=${d##*/etcd-}
    log "Go module proxy unreachable; using cached etcd $v"
  fi
  echo "$v"
}

# ---- kubernetes --------------------------------------------------------------------------
build_kubernetes() {
  local version=$1 out=$cache/kubernetes-$1
  # kubectl too: the tests use it where a user would (kubectl describe, explain, wait).
  local cmds=() cmd
  for cmd in kube-apiserver kube-controller-manager kubectl; do [[ -x $out/$cmd ]] || cmds+=("$cmd"); done
  (( ${#cmds[@]} == 0 )) && return 0
  log "building ${cmds[*]} $version from k8s.io/kubernetes (first run only; ~10-20 min on 2 cores, a minute or two for kubectl alone)..."
  local work; work=$(mktemp -d)
  local info gomod
  info=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$version")
  gomod=$(printf '%s' "$info" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local need_go; need_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  if ! version_le "$need_go" "$go_version"; then
    log "k8s.io/kubernetes $version needs go $need_go (have $go_version)"; rm -rf "$work"; return 1
  fi
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging;
  # map each one to the published v0.MINOR.PATCH of the same release instead.
  local staging_version="v0.${version#v1.}"
  {
    printf 'module portico.dev/controlplane/kubernetes\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$go_version" "$version"
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/[a-z0-9-]*$#\t\1 => \1 '"$staging_version"'#p' "$gomod"
    printf ')\n'
  } >"$work/go.mod"
  local major minor
  major=$(echo "$version" | cut -d. -f1 | tr -d v); minor=$(echo "$version" | cut -d. -f2)
  local ldflags="" key val
  for kv in "gitVersion=$version" "gitMajor=$major" "gitMinor=$minor" "gitTreeState=clean" \
            "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    key=${kv%%=*}; val=${kv#*=}
    ldflags+=" -X k8s.io/component-base/version.$key=$val -X k8s.io/client-go/pkg/version.$key=$val"
  done
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local ok=1 gets=()
  for cmd in "${cmds[@]}"; do gets+=("k8s.io/kubernetes/cmd/$cmd@$version"); done
  (cd "$work" && go get "${gets[@]}" >&2) || ok=0
  for cmd in "${cmds[@]}"; do
    (( ok )) || break
    log "  go build $cmd ..."
    (cd "$work" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd" >&2) || ok=0
  done
  rm -rf "$work"
  (( ok )) || { rm -rf "$out.tmp"; return 1; }
  # Binaries already there stay; the new ones join them.
  mkdir -p "$out"
  for cmd in "${cmds[@]}"; do mv "$out.tmp/$cmd" "$out/$cmd"; done
  rm -rf "$out.tmp"
  log "kubernetes $version ready: $out"
}

resolve_and_build_kubernetes() {
  if [[ -n ${PORTICO_K8S_VERSION:-} ]]; then
    build_kubernetes "$PORTICO_K8S_VERSION" && { echo "$cache/kubernetes-$PORTICO_K8S_VERSION"; return; }
    exit 1
  fi
  local candidates; candidates=$(stable_versions k8s.io/kubernetes | head -n 3 || true)
  if [[ -z $candidates ]]; then
    local d; d=$(newest_cached kubernetes kube-apiserver kube-controller-manager) \
      || { log "cannot list k8s.io/kubernetes versions from the Go module proxy and nothing is cached"; exit 1; }
    log "Go module proxy unreachable; using cached $(basename "$d")"
    echo "$d"; return
  fi
  local v
  for v in $candidates; do
    if build_kubernetes "$v"; then echo "$cache/kubernetes-$v"; return; fi
    log "k8s.io/kubernetes $v did not build here; trying the previous release"
  done
  log "no recent k8s.io/kubernetes release builds with go $go_version"; exit 1
}

mkdir -p "$cache"
etcd_version=$(resolve_etcd)
build_etcd "$etcd_version"
kube_dir=$(resolve_and_build_kubernetes)

# One directory with all three, as KUBEBUILDER_ASSETS would be.
assets=$cache/assets-$(basename "$kube_dir")-etcd-$etcd_version
mkdir -p "$assets"
ln -sf "$cache/etcd-$etcd_version/etcd" "$assets/etcd"
ln -sf "$kube_dir/kube-apiserver" "$assets/kube-apiserver"
ln -sf "$kube_dir/kube-controller-manager" "$assets/kube-controller-manager"
[[ -x $kube_dir/kubectl ]] && ln -sf "$kube_dir/kubectl" "$assets/kubectl"
echo "$assets"
