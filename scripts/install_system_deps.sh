#!/usr/bin/env bash
# Installs the Debian packages the harness uses: nginx (load balancer in front of replicas)
# wrk (server benchmark load generator), chromium (reports are opened headless in the
# tests) and prometheus (`harness stack up --monitor`; the tests run their own on loopback).
# Skips what is already there. The prometheus package's own service is not wanted: stopped.
set -euo pipefail
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: apt-get not found; install ${need[*]} by hand (needed for multi-replica stacks)" >&2
  exit 0
fi
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
if [[ " ${need[*]} " == *" prometheus "* ]]; then
  # the package enables a system service (port 9090, /var/lib/prometheus): not ours to run
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
fi
