#!/bin/bash
# `make run` timed as a whole, as a new user meets it: a fresh clone of this checkout's HEAD, `make setup` (a new
# venv), then `make run` (every notebook of the level, from empty run folders). Writes figures/<level>/make_run.json
# in this checkout (wall seconds of each part, the revision, the hardware, its instruction set and fp32 GEMM rate
# before and after the notebooks, Table 2's Full UF1, and the earlier records: htnet_lib.reproduce.make_run_record)
# and puts the clone's figures/<level>/ in place of this checkout's (files there that the run did not write go), so
# the figures and their times come from the same run. Run it on quiet cores: it measures the machine.
#   tools/time-make-run.sh [PARAMS]    PARAMS: the level (default quick)
set -euo pipefail
level=${1:-quick}
here=$(cd "$(dirname "$0")/.." && pwd)
# the clone is elsewhere, so it is told where this checkout's Makefile finds the release
if [ -z "${HTNET_DATA_DIR:-}" ]; then
    for d in "$here/../shared/data/htnet-release" "$here/data/htnet-release"; do
        if [ -f "$d/combined_3_class2_for_optical_flow.csv" ]; then export HTNET_DATA_DIR=$(cd "$d" && pwd); break; fi
    done
fi
clone=$(mktemp -d "${TMPDIR:-/tmp}/htnet-make-run.XXXXXX")
trap 'rm -rf "$clone"' EXIT
git clone -q "$here" "$clone/project"
cd "$clone/project"
rev=$(git rev-parse HEAD)
t0=$(date +%s)
make setup >"$clone/setup.log" 2>&1 || { tail -20 "$clone/setup.log"; exit 1; }
t1=$(date +%s)
gemm() { .venv/bin/python -c 'from htnet_lib.studies.bench import gemm_rate; print(gemm_rate(1024))'; }
gemm_before=$(gemm)
make run PARAMS="$level" >"$clone/run.log" 2>&1 || { tail -40 "$clone/run.log"; exit 1; }
t2=$(date +%s)
gemm_after=$(gemm)
# copied beside the old folder first, then swapped in by renames: an interrupted copy leaves the old folder as it was
new="$here/figures/.$level.incoming" old="$here/figures/.$level.replaced"
rm -rf "$new" "$old"
cp -r "figures/$level" "$new"
.venv/bin/python - "$level" "$new" "$here/figures/$level" "$rev" $((t1 - t0)) $((t2 - t1)) "$gemm_before" "$gemm_after" <<'EOF'
import sys
from pathlib import Path
from htnet_lib._io import atomic_write_json
from htnet_lib.reproduce import make_run_record
level, new, old, rev = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
setup, run = int(sys.argv[5]), int(sys.argv[6])
atomic_write_json(new / "make_run.json", make_run_record(level, new, old if old.is_dir() else None, rev, setup, run,
                                                        [float(g) for g in sys.argv[7:9]]))
EOF
if [ -d "$here/figures/$level" ]; then mv "$here/figures/$level" "$old"; fi
mv "$new" "$here/figures/$level"
rm -rf "$old"
cat "$here/figures/$level/make_run.json"
