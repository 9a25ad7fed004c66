#!/usr/bin/env bash
# Round 2 of the study, in the order study/PLAN-r2.md registers. Resumable: run it again after an
# interruption and every finished job is skipped. One stage per call:
#   bash scripts/study-r2.sh sizing      # validation only; then write best-cl / best-cl-sr into configs/study/r2/base.yaml
#   bash scripts/study-r2.sh tier-a      # P3, four regimes, teachers 0-11 in blocks of 4
#   bash scripts/study-r2.sh tier-b      # the other variants, P3 and P1, teachers 0-3
#   bash scripts/study-r2.sh report      # every table and figure of round 2 from the result files
#   bash scripts/study-r2.sh stage       # git add the finished per-run files (while a grid runs too)
# JOBS (default 2) grid jobs run at once; the grid gives each its share of the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SKD="${SKD:-.venv/bin/selective-kd}"
JOBS="${JOBS:-2}"
CFG=configs/study/r2
OUT=study/r2
REGIMES=(clean sym40 asym30 short)
TIER_A="[unguided,kd,kd-cl,kd-cl-sr,kd-cl-srmean,kd-cl-srshuf,wsld]"
TIER_B_P3="[kd,dkd,kd-ls,dist,ctkd,wttm,kd-cl-inv,kd-cl-inv-sr,kd-sr-sample,kd-cl-root,best-cl,best-cl-sr]"
TIER_B_P1="[unguided,kd,kd-cl,kd-cl-sr,kd-cl-srmean,kd-cl-srshuf,kd-cl-inv,kd-cl-inv-sr,kd-sr-sample,kd-cl-root,best-cl,best-cl-sr]"

grid() { "$SKD" grid --jobs "$JOBS" --quiet "$@"; }
# While the plan's runs are in progress nobody may see a result (study/PLAN-r2.md, deviation 3):
# the grid's end-of-run student table (its val_acc is the test set's: val_source: test) stays off the terminal, and only
# its summary line (trained / skipped / refused / failed) and errors show.
grid_blind() { grid "$@" | { grep -E '^grid:' || true; }; }

# The short regime's teachers and scorers are clean's (same identity: only the students' epochs
# differ), and P1's teachers are P3's (the scorer is not part of the teacher). Copying clean-p3's
# shared folder in lets the stage find them finished with these very settings and reuse them
# instead of training them again; what differs (P1's curriculum) is computed there.
# With a second argument only that teacher seed's folder is copied (Tier B's P1 runs one
# teacher at a time; copying all twelve left unused teachers in P1's folders).
teacher_seed() { awk '/^[^ #]/ {section = $0} section == "teacher:" && /^  seed:/ {print $2; exit}' "$1config.yaml"; }
share_clean() {
  local dest="$OUT/$1" src="$OUT/${1%-p*}-p3" only="${2:-}" d
  case "$1" in short-*) src="$OUT/clean-p3" ;; esac
  if [ "$src" = "$dest" ] || [ ! -d "$src/shared" ]; then return 0; fi
  for d in "$src"/shared/*/; do
    if [ -n "$only" ] && [ "$(teacher_seed "$d")" != "$only" ]; then continue; fi
    mkdir -p "$dest/shared/$(basename "$d")"
    if [ "${1#short-}" = "p3" ]; then cp -rn "$d". "$dest/shared/$(basename "$d")/"   # teacher and scorers
    else cp -rn "$d"teacher "$d"config.yaml "$dest/shared/$(basename "$d")/"; fi      # the teacher only
  done
}

# A folder the plan's runs have not finished: its per-run results are committed as they come,
# its tables are not (the plan: no analysis before the planned teachers have finished).
# tests/report/test_study_folders.py checks both; the report stage removes the marks.
in_progress() {
  mkdir -p "$1"
  [ -f "$1/IN-PROGRESS" ] || echo "Round 2 runs in progress (study/PLAN-r2.md): per-run results are committed as they finish; the tables wait for the plan's last run (bash scripts/study-r2.sh report)." > "$1/IN-PROGRESS"
  [ -f "$1/.gitignore" ] || printf '%s\n' "# In progress (IN-PROGRESS): the grid's end-of-run tables and figures wait for the plan's last run." /results.md /results.csv '/*.png' > "$1/.gitignore"
}

case "${1:-}" in
  sizing)
    grid --config "$CFG/sizing.yaml" --out "$OUT/sizing"
    "$SKD" report "$OUT/sizing" --quiet ;;   # the committed tables, paths relative to the repository
  tier-a)
    for block in "[0,1,2,3]" "[4,5,6,7]" "[8,9,10,11]"; do
      for r in "${REGIMES[@]}"; do
        in_progress "$OUT/$r-p3"
        share_clean "$r-p3"
        grid_blind --config "$CFG/$r-p3.yaml" --out "$OUT/$r-p3" "variants=$TIER_A" "teacher_seeds=$block"
      done
    done ;;
  tier-b)
    grep -q '^    best-cl:' "$CFG/base.yaml" || { echo "study-r2: define best-cl and best-cl-sr in $CFG/base.yaml (the sizing check picks the method) first" >&2; exit 2; }
    # Teacher by teacher (0, 1, 2, 3), all regimes and both protocols each: a cut at the end of
    # the time Tier B has (study/PLAN-r2.md, deviation 5) then leaves whole teachers.
    for t in 0 1 2 3; do
      for r in "${REGIMES[@]}"; do
        in_progress "$OUT/$r-p3"
        grid_blind --config "$CFG/$r-p3.yaml" --out "$OUT/$r-p3" "variants=$TIER_B_P3" "teacher_seeds=[$t]"
        in_progress "$OUT/$r-p1"
        share_clean "$r-p1" "$t"
        grid_blind --config "$CFG/$r-p1.yaml" --out "$OUT/$r-p1" "variants=$TIER_B_P1" "teacher_seeds=[$t]"
      done
      echo "study-r2: Tier B teacher $t finished at $(date -u +%H:%M) UTC"
    done ;;
  report)
    # The plan's margin (±1 pp) and registered families; report-args keeps them beside the tables,
    # so tests/report/test_study_folders.py regenerates each folder with the same options.
    for d in "$OUT"/*-p1 "$OUT"/*-p3; do
      [ -f "$d/grid.json" ] || continue
      rm -f "$d/IN-PROGRESS" "$d/.gitignore"   # every planned run is in: the tables may now be made
      echo "--margin 1 --families $OUT/families-${d##*-}.yaml" > "$d/report-args"
      # shellcheck disable=SC2046  # the options are words
      "$SKD" report "$d" --quiet $(cat "$d/report-args")
    done
    # One page per protocol: the registered families across the four regimes (report --cells).
    for p in p3 p1; do
      cells=""; for r in "${REGIMES[@]}"; do [ -f "$OUT/$r-$p/grid.json" ] && cells="$cells $OUT/$r-$p"; done
      [ -n "$cells" ] || continue
      mkdir -p "$OUT/summary-$p"
      echo "${cells# } --cells --margin 1 --families $OUT/families-$p.yaml" > "$OUT/summary-$p/summary-args"
      # shellcheck disable=SC2046
      "$SKD" report $(cat "$OUT/summary-$p/summary-args") --out "$OUT/summary-$p"
    done ;;
  stage)
    bash scripts/study-stage.sh "$OUT" ;;   # what a session commits as runs finish
  *)
    echo "usage: bash scripts/study-r2.sh sizing | tier-a | tier-b | report | stage" >&2; exit 2 ;;
esac
