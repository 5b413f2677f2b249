#!/bin/bash
# `make run` timed as a whole, as a new user meets it: a fresh clone of this checkout's HEAD, `make setup` (a new
# venv), then `make run` (every notebook of the level, from empty run folders). Writes figures/<level>/make_run.json
# in this checkout (wall seconds of each part, the revision, the hardware) and puts the clone's figures/<level>/ in
# place of this checkout's (files there that the run did not write go), so the figures and their times come from the
# same run. Run it on quiet cores: it measures the machine.
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
make run PARAMS="$level" >"$clone/run.log" 2>&1 || { tail -40 "$clone/run.log"; exit 1; }
t2=$(date +%s)
# copied beside the old folder first, then swapped in by renames: an interrupted copy leaves the old folder as it was
new="$here/figures/.$level.incoming" old="$here/figures/.$level.replaced"
rm -rf "$new" "$old"
cp -r "figures/$level" "$new"
.venv/bin/python - "$new/make_run.json" "$level" "$rev" $((t1 - t0)) $((t2 - t1)) <<'EOF'
import sys
from htnet_lib._io import atomic_write_json, hardware
out, level, rev, setup, run = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
atomic_write_json(out, {"command": f"tools/time-make-run.sh {level}", "git revision": rev, "hardware": hardware(),
                        "setup seconds": setup, "run seconds": run, "total seconds": setup + run})
EOF
if [ -d "$here/figures/$level" ]; then mv "$here/figures/$level" "$old"; fi
mv "$new" "$here/figures/$level"
rm -rf "$old"
cat "$here/figures/$level/make_run.json"
