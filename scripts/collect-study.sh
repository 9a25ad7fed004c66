#!/usr/bin/env bash
# Copy the study's finished results (no checkpoints, no caches) from runs/ into study/, and
# regenerate each protocol's tables and figures from them with the toolkit's own report.
#   bash scripts/collect-study.sh            # every runs/study-* folder
# What is copied: grid.json, config.yaml, result.json, metrics.jsonl, curriculum.csv/.json;
# a stage without result.json (still running) is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
for src in runs/study-*/; do
  name=$(basename "$src"); name=${name#study-}; dest="study/$name"
  [ -d "$src/runs" ] || continue
  mkdir -p "$dest"
  (cd "$src" && find . \( -name grid.json -o -name config.yaml -o -name result.json -o -name metrics.jsonl \
      -o -name curriculum.csv -o -name curriculum.json \) -print0) | while IFS= read -r -d '' f; do
    dir=$(dirname "$f")
    case "$f" in */metrics.jsonl) [ -f "$src/$dir/result.json" ] || continue ;; esac
    mkdir -p "$dest/$dir" && cp "$src/$f" "$dest/$f"
  done
  .venv/bin/selective-kd report "$dest" --quiet > /dev/null
  echo "$dest: $(find "$dest" -path '*students*' -name result.json | wc -l) student results"
done
