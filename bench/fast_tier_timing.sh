#!/bin/bash
# The fast tier back to back on clean clones: an earlier commit (default c1a2535, run in one process as its
# Makefile did; or with the pytest arguments given after it, e.g. `-n auto` for a commit whose `make test` used
# xdist) and HEAD (on pytest-xdist, as `make test` runs it), alternating, twice; walls to $WORK/timing.txt.
#   bash bench/fast_tier_timing.sh [OLD_COMMIT [PYTEST_ARGS...]]
set -u
REPO=$(git rev-parse --show-toplevel)
OLD=${1:-c1a2535}
OLD_ARGS=("${@:2}")
WORK=${WORK:-/tmp/fast_tier_timing}
PY=$REPO/.venv/bin/python
mkdir -p $WORK && cd $WORK
rm -rf old new $WORK/timing.txt; git clone -q $REPO old && (cd old && git checkout -q $OLD); git clone -q $REPO new
M='not slow and not ddp and not postgres and not fault and not gpu'
run() { # name dir extra...
  local name=$1 dir=$2; shift 2
  local start=$(date +%s.%N)
  (cd $dir && PYTHONPATH=$dir/src $PY -m pytest -m "$M" -q -p no:cacheprovider "$@" > $WORK/t_$name.txt 2>&1)
  local rc=$?
  echo "$name rc=$rc wall=$(echo "$(date +%s.%N) - $start" | bc) $(tail -n 1 $WORK/t_$name.txt)" >> $WORK/timing.txt
}
run old1 $WORK/old "${OLD_ARGS[@]}"
run new1 $WORK/new -n auto
run old2 $WORK/old "${OLD_ARGS[@]}"
run new2 $WORK/new -n auto
cat $WORK/timing.txt
