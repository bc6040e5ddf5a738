#!/usr/bin/env bash
# Builds the web UI (gateway/web, React + TypeScript + Vite) into gateway/web/dist, which the
# gateway serves at "/". Quick no-op when dist is newer than every source file. Installs the npm
# packages from package-lock.json (`npm ci`) when node_modules is missing or older than the lock.
#   TRADEPLANE_SKIP_WEB=1  skip the build (the gateway then serves a placeholder page)
set -euo pipefail
WEB="$(cd "$(dirname "$0")/../gateway/web" && pwd)"
cd "$WEB"

if [ "${TRADEPLANE_SKIP_WEB:-0}" = "1" ]; then
  echo "web UI: skipped (TRADEPLANE_SKIP_WEB=1)"; exit 0
fi

sources=(src index.html package.json package-lock.json vite.config.ts tsconfig.json)
if [ -f dist/index.html ] && [ -z "$(find "${sources[@]}" -newer dist/index.html -print -quit 2>/dev/null)" ]; then
  exit 0 # up to date
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: building the web UI needs Node.js >= 20.19 with npm: install the nodejs package" >&2
  echo "       of NodeSource or nodejs.org (Debian 12's own nodejs is 18, too old for Vite 8)," >&2
  echo "       or set TRADEPLANE_SKIP_WEB=1 to run without the UI." >&2
  exit 1
fi
# Vite 8 needs Node 20.19+ (or 22.12+).
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "error: the web UI needs Node.js >= 20.19 (found $(node --version)); upgrade Node.js" >&2
  exit 1
fi

if [ ! -f package-lock.json ]; then
  echo "==> web UI: npm install (no package-lock.json yet)"
  npm install --no-audit --no-fund --loglevel=error
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> web UI: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "==> web UI: npm run build -> gateway/web/dist"
npm run build --silent
touch dist/index.html
