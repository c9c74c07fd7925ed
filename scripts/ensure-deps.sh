#!/usr/bin/env bash
# Installs npm packages from the lockfile when node_modules is missing or older than the lockfile,
# so that `npm start` and `npm test` work in a fresh clone and stay fast afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.offboard-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "[toolchain] installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi
