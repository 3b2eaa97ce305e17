#!/bin/sh
# Install amber into .venv and run the embedded default job:
# back up ~/Desktop (or this directory) into ~/.local/share/amber/default,
# list the snapshots, restore into a fresh directory and verify every byte.
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh
.venv/bin/python -m pip install -q .
exec .venv/bin/amber quickstart "$@"
