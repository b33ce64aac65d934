#!/usr/bin/env bash
# Every test: lint, typecheck, unit + integration (node's test runner on a real PostgreSQL and Redis),
# then the production build and the end-to-end suite in Chromium. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "Missing system packages: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

if [ ! -d node_modules/.bin ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund
fi

step "prisma generate"
npx prisma generate >/dev/null

step "lint"
npx biome lint . --diagnostic-level=error

step "typecheck"
npx tsc --noEmit -p tsconfig.json
npx tsc --noEmit -p router-service/tsconfig.json

step "unit and integration tests"
npx tsx scripts/run-tests.ts

step "build"
build_log="$(mktemp)"
TUNA_SKIP_BUILD_TYPECHECK=1 npx next build 2>&1 | tee "$build_log"
# A server file whose fs call the bundler cannot scope ships the whole repository with the server build.
if grep -q "causes tracing of the whole project" "$build_log"; then
  echo "next build traced the whole project (see the warning above): mark the runtime path /*turbopackIgnore: true*/" >&2
  exit 1
fi
rm -f "$build_log"

step "end-to-end tests (Chromium)"
E2E_REBUILD=0 npx tsx scripts/run-e2e.ts

echo
echo "All test suites passed."
