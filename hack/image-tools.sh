#!/usr/bin/env bash
# Installs what `npm run image` needs to assemble an OCI image without a container engine:
# umoci (builds OCI layouts from a directory; no daemon, no registry) from Debian's packages,
# plus apt-get/dpkg-deb (already on Debian) to fetch the runtime libraries; and skopeo, with
# which the image test loads the archive into a container store exactly as `podman load` does.
# Idempotent.
# Exit 3 = cannot install here (not root, or no apt): callers skip with a loud message.
set -euo pipefail
say() { echo "[image-tools] $*" >&2; }

missing=()
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "cannot install ${missing[*]}: needs root and apt-get (Debian/Ubuntu)"
  exit 3
fi
# Package lists older than a day (or none): refresh once.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  say "apt-get update ..."
  apt-get update -qq >&2
fi
say "apt-get install ${missing[*]} ..."
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
say "installed ${missing[*]}"
