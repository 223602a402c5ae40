#!/usr/bin/env bash
# Create the Isaac Lab venv (default .venv-isaac at the repository root): isaaclab 3.0.0 from PyPI with every
# package pinned by sim/isaac/constraints.txt, plus robot-rl (editable) and what its CLI and tests import, for
# the isaac:<id> tasks (sim/isaac) and `make test-isaac`.
#
# Why a separate venv: isaaclab 3.0.0 is published for Python 3.12 only (the project's Python is 3.11) and pins
# torch 2.11, whose PyPI wheel brings ~2.7 GB of CUDA libraries (PyTorch's CPU-wheel index is not reachable here):
# measured 544 s and 7.8 GB on this machine (benchmarks/README.md). Isaac Sim is not needed: Isaac Lab 3 runs
# kit-less on Newton (MuJoCo-Warp), on the CPU too.
# Usage: bash sim/isaac/make_venv.sh  (idempotent; VENV=dir to place it; PYTHON=python3.12 to pick the
# interpreter, default: python3.12 on PATH, else pyenv's newest 3.12)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-isaac}
stamp="$VENV/.installed"
if [ -f "$stamp" ] && [ "$stamp" -nt "$0" ] && [ "$stamp" -nt sim/isaac/constraints.txt ] && \
   [ "$stamp" -nt pyproject.toml ]; then
    echo "make_venv.sh: $VENV is up to date"
    exit 0
fi
is312() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; }
if [ -z "${PYTHON:-}" ]; then
    # a pyenv shim on PATH fails unless 3.12 is the active version, so each candidate is tried
    for candidate in "$(command -v python3.12 || true)" \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do
        if is312 "$candidate"; then PYTHON=$candidate; break; fi
    done
fi
if ! is312 "${PYTHON:-}"; then
    echo "make_venv.sh: Isaac Lab 3.0.0 needs Python 3.12 (none found; set PYTHON=/path/to/python3.12)" >&2
    exit 1
fi
start=$(date +%s)
"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q -c sim/isaac/constraints.txt "isaaclab==3.0.0"
# robot-rl's own dependencies (torch etc. are already there from isaaclab's pins); pyarrow: the CLI imports the
# dataset reader; pytest: the tests
$PIP install -q -c sim/isaac/constraints.txt -e . pyarrow pytest
"$VENV/bin/python" -c "import isaaclab, isaaclab_tasks, pxr, robot_rl, sim.isaac.assets"
touch "$stamp"
echo "make_venv.sh: $VENV ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)"
