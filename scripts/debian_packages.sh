#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: Prometheus + promtool (dashboard
# and alert tests) and Chromium (the web UI's Playwright tests). Quick no-op when present;
# needs root (or passwordless sudo) otherwise.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the web UI's browser tests (Playwright)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "warning: not Debian/Ubuntu; install ${need[*]} yourself (tests that need them skip)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "warning: run 'sudo apt-get install ${need[*]}' (tests that need them skip)" >&2; exit 0; fi
fi
echo "==> installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a system Prometheus on :9090 on install; the tests run their own on free ports.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
echo "==> installed ${need[*]}"
