#!/usr/bin/env bash
# Create .venv-lerobot at the repository root: the real `lerobot` package, to check that the datasets written by
# robot_rl.data load in LeRobot's own LeRobotDataset (tests/robot_rl/data/test_lerobot_compat.py).
#
# Which lerobot: 0.5 and later (0.6.1 is current) require Python >= 3.12 and use its syntax (PEP 695); this
# project's Python is 3.11 (Debian 12 has no 3.12), so the venv takes lerobot 0.4.4, the newest release for
# Python 3.11. It reads and writes the same dataset format, codebase_version "v3.0", as 0.6.1.
# How: lerobot 0.4.4 pins torch < 2.11 (pip would pull a multi-GB CUDA build), so it is installed --no-deps on
# our CPU torch, with only the packages its dataset code imports. torchvision is left out (PyPI's wheels are
# CUDA builds that do not load on CPU torch); the check script stands in a module for its unused import.
# Usage: bash tests/robot_rl/data/make_lerobot_venv.sh  (idempotent; PYTHON=python3.x to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/../../.."
VENV=${VENV:-.venv-lerobot}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.installed"
if [ -f "$stamp" ] && [ "$stamp" -nt "$0" ]; then
    echo "make_lerobot_venv.sh: $VENV is up to date"
    exit 0
fi
start=$(date +%s)
"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q "${TORCH_SPEC:-torch==2.13.0}"  # CPU build first (same spec as the Makefile)
$PIP install -q --no-deps "lerobot==0.4.4"
$PIP install -q "numpy>=2,<2.3" "datasets>=4,<5" "huggingface-hub>=0.34.2,<0.36" "packaging>=24.2,<26" \
    "draccus==0.10.0" "av>=15,<16" "accelerate>=1.10" "jsonlines>=4" "einops>=0.8" "termcolor>=2.4" pillow \
    --no-warn-conflicts  # conflicts = the pins skipped above (torch, torchvision) and unused extras
"$VENV/bin/python" tests/robot_rl/data/lerobot_check.py --import-only
touch "$stamp"
echo "make_lerobot_venv.sh: $VENV ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)"
