#!/usr/bin/env bash
# tests/browser/run.sh COORDINATOR_BIN ARTIFACTS_DIR — the browser suite for
# ctest. Exits 77 (skipped) when Chromium, node or the dashboard's npm
# packages are missing; tests/run installs them as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
if ! command -v node >/dev/null || [ ! -x /usr/bin/chromium ] ||
   [ ! -d "$top/dashboard/node_modules/playwright-core" ] ||
   [ ! -f "$top/dashboard/node_modules/d3/dist/d3.min.js" ]; then
  echo "browser tests skipped: need node, /usr/bin/chromium and 'npm ci' in dashboard/"
  exit 77
fi
export COORDINATOR_BIN=$1 ARTIFACTS_DIR=$2
mkdir -p "$ARTIFACTS_DIR"
exec node --test --test-concurrency=1 "$here"/*.test.js
