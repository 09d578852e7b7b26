#!/usr/bin/env bash
# dnsmasq for the ExternalService DNS tests (a real DNS server on loopback). Idempotent:
# does nothing when dnsmasq is already there; installs the Debian package otherwise.
set -euo pipefail
if command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; then
  echo "[bootstrap] dnsmasq present" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "[bootstrap] dnsmasq missing and cannot be installed here (needs root and apt-get): DNS tests will skip" >&2
  exit 0
fi
echo "[bootstrap] installing dnsmasq-base (apt) ..." >&2
apt-get install -y --no-install-recommends dnsmasq-base >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y --no-install-recommends dnsmasq-base >/dev/null; }
echo "[bootstrap] dnsmasq installed" >&2
