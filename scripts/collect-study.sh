#!/usr/bin/env bash
# Copy the study's finished results (no checkpoints, no caches) from runs/ into study/, and
# regenerate each protocol's tables and figures from them with the toolkit's own report.
#   bash scripts/collect-study.sh            # every runs/study-* folder
#   bash scripts/collect-study.sh fashion-p1 # only runs/study-fashion-p1 (e.g. while another still runs)
# What is copied: grid.json, config.yaml, result.json, metrics.jsonl, curriculum.csv/.json;
# a stage without result.json (still running) is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then sources=(); for n in "$@"; do sources+=("runs/study-$n/"); done; else sources=(runs/study-*/); fi
for src in "${sources[@]}"; do
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
