#!/usr/bin/env bash
# Tools the network-namespace suites (*.net.test.ts) and the l2-failover benchmark use as
# outside observers: arping and ping (iputils). Installed from Debian when missing and we are
# root; otherwise those suites skip themselves and say why. Idempotent: a no-op once installed.
set -euo pipefail
need=()
command -v arping >/dev/null 2>&1 || need+=(iputils-arping)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then echo "[net-tools] arping, ping and ip present" >&2; exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "[net-tools] missing ${need[*]} and cannot apt-get install them (not root or not Debian): the net suites will be skipped" >&2
  exit 0
fi
echo "[net-tools] installing ${need[*]} ..." >&2
if ! apt-get install -y -q --no-install-recommends "${need[@]}" >&2; then
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
