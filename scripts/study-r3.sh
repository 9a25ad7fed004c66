#!/usr/bin/env bash
# Round 3 of the study (study/PLAN-r3.md): label-aware selective reliance (kd-cl-srlabel) on
# round 2's P3 teachers. Resumable: run it again after an interruption. One stage per call:
#   bash scripts/study-r3.sh run      # copy round 2's teachers, curricula, kd and kd-cl-sr; train kd-cl-srlabel
#   bash scripts/study-r3.sh report   # every table, once all 48 runs are in
#   bash scripts/study-r3.sh stage    # git add the finished per-run files (while the grid runs too)
set -euo pipefail
cd "$(dirname "$0")/.."
SKD="${SKD:-.venv/bin/selective-kd}"
JOBS="${JOBS:-2}"
R2=study/r2
OUT=study/r3
REGIMES=(clean sym40 asym30 short)
VARIANTS="[kd,kd-cl-sr,kd-cl-srlabel]"
TEACHERS="[0,1,2,3,4,5,6,7,8,9,10,11]"
REUSED=(kd kd-cl-sr)   # round 2's runs of these are copied in and found finished, not retrained

# As round 2 (PLAN-r2 deviation 3): while runs are in progress only the grid's summary line and
# errors show; the result table (test-set accuracies) stays off the terminal.
grid_blind() { "$SKD" grid --jobs "$JOBS" --quiet "$@" | { grep -E '^grid:' || true; }; }

in_progress() {
  mkdir -p "$1"
  [ -f "$1/IN-PROGRESS" ] || echo "Round 3 runs in progress (study/PLAN-r3.md): per-run results are committed as they finish; the tables wait for the plan's last run (bash scripts/study-r3.sh report)." > "$1/IN-PROGRESS"
  [ -f "$1/.gitignore" ] || printf '%s\n' "# In progress (IN-PROGRESS): the grid's end-of-run tables and figures wait for the plan's last run." /results.md /results.csv '/*.png' > "$1/.gitignore"
}

# Round 2's shared folder (teachers, scorers, curricula) and, per teacher, its seed config and
# the reused students' folders; cp -n never overwrites what a previous call copied.
copy_round2() {
  local src="$R2/$1" dest="$OUT/$1" d rel v
  [ -d "$src/shared" ] || { echo "study-r3: $src has no round-2 results to reuse" >&2; exit 2; }
  cp -rn "$src/shared" "$dest/"
  for d in "$src"/runs/*/teacher*/seed*/; do
    rel=${d#"$src/"}
    mkdir -p "$dest/${rel}students"
    cp -n "${d}config.yaml" "$dest/$rel"
    for v in "${REUSED[@]}"; do cp -rn "${d}students/$v" "$dest/${rel}students/"; done
  done
}

case "${1:-}" in
  run)
    for r in "${REGIMES[@]}"; do
      in_progress "$OUT/$r-p3"
      copy_round2 "$r-p3"
      grid_blind --config "configs/study/r2/$r-p3.yaml" --out "$OUT/$r-p3" "variants=$VARIANTS" "teacher_seeds=$TEACHERS"
    done ;;
  report)
    cells=""
    for r in "${REGIMES[@]}"; do
      d="$OUT/$r-p3"
      [ -f "$d/grid.json" ] || continue
      rm -f "$d/IN-PROGRESS" "$d/.gitignore"   # every planned run is in: the tables may now be made
      echo "--margin 1 --families $OUT/families.yaml" > "$d/report-args"
      # shellcheck disable=SC2046  # the options are words
      "$SKD" report "$d" --quiet $(cat "$d/report-args")
      cells="$cells $d"
    done
    [ -n "$cells" ] || exit 0
    mkdir -p "$OUT/summary"
    echo "${cells# } --cells --margin 1 --families $OUT/families.yaml" > "$OUT/summary/summary-args"
    # shellcheck disable=SC2046
    "$SKD" report $(cat "$OUT/summary/summary-args") --out "$OUT/summary" ;;
  stage)
    bash scripts/study-stage.sh "$OUT" ;;   # what a session commits as runs finish
  *)
    echo "usage: bash scripts/study-r3.sh run | report | stage" >&2; exit 2 ;;
esac
