#!/usr/bin/env bash
# What a session commits while a study's grids run: `bash scripts/study-stage.sh study/r2` git-adds
# every file under the folder that its .gitignore files let through, except the metrics.jsonl of a
# stage still running (no result.json beside it yet), and prints git's one-line count.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: bash scripts/study-stage.sh STUDY_FOLDER}"
git ls-files -o -m --exclude-standard "$out" | while IFS= read -r f; do
  case "$f" in */metrics.jsonl) [ -f "$(dirname "$f")/result.json" ] || continue ;; esac
  git add -- "$f"
done
git diff --cached --stat -- "$out" | tail -1
