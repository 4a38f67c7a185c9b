#!/usr/bin/env bash
# Fails when gen/ is not what `npm run generate` makes from proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
npx buf lint
npm run --silent generate
if ! git diff --quiet --exit-code -- gen || [ -n "$(git ls-files --others --exclude-standard gen)" ]; then
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  git status --short gen >&2
  exit 1
fi
echo "gen/ is fresh"
