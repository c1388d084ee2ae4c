#!/bin/bash
# back-to-back fast tier: previous HEAD (c1a2535, serial as its Makefile ran it) and this HEAD (xdist, as make test)
set -u
cd /tmp/cmp
rm -rf old new2; git clone -q /work/main old && (cd old && git checkout -q c1a2535); git clone -q /work/main new2
M='not slow and not ddp and not postgres and not fault and not gpu'
run() { # name dir extra...
  local name=$1 dir=$2; shift 2
  local start=$(date +%s.%N)
  (cd $dir && PYTHONPATH=$dir/src /work/main/.venv/bin/python -m pytest -m "$M" -q -p no:cacheprovider "$@" > /tmp/cmp/t_$name.txt 2>&1)
  local rc=$?
  local end=$(date +%s.%N)
  echo "$name rc=$rc wall=$(echo "$end - $start" | bc) $(tail -n 1 /tmp/cmp/t_$name.txt)" >> /tmp/cmp/timing.txt
}
date >> /tmp/cmp/timing.txt
run old1 /tmp/cmp/old
run new1 /tmp/cmp/new2 -n auto
run old2 /tmp/cmp/old
run new2 /tmp/cmp/new2 -n auto
date >> /tmp/cmp/timing.txt
