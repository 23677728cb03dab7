#!/usr/bin/env bash
# Install the package into a FRESH virtual environment, as a user's machine would, and check that
# every module imports and every console script answers --help.
#   tools/check_install.sh                 # plain `pip install -e .` (no extras)
#   EXTRAS=metrics,hf tools/check_install.sh
#   VENV=/tmp/venv tools/check_install.sh  # where the venv goes (default: a temporary folder)
# torch is installed first and pinned (TORCH_VERSION, default 2.13.0: a CPU build where there is
# no CUDA), so no requirement can pull another build.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
torch_version=${TORCH_VERSION:-2.13.0}
extras=${EXTRAS:-}
venv=${VENV:-$(mktemp -d)/venv}
export PIP_DISABLE_PIP_VERSION_CHECK=1

$python -m venv "$venv"
vpy="$venv/bin/python"
echo "[check_install] fresh venv $venv"
"$vpy" -m pip install -q "torch==${torch_version}" \
  || "$vpy" -m pip install -q "torch==${torch_version}" --index-url https://download.pytorch.org/whl/cpu
constraint=$(mktemp)
echo "torch==$("$vpy" -c 'import torch; print(torch.__version__.split("+")[0])')" > "$constraint"
target="."
[ -n "$extras" ] && target=".[${extras}]"
echo "[check_install] pip install -e '$target'"
"$vpy" -m pip install -q -c "$constraint" -e "$target"
rm -f "$constraint"

# Every module of the package imports (optional extras are feature-detected inside functions).
"$vpy" - <<'PY'
import importlib
import pkgutil
import sys

import toolkit

failed = []
names = [m.name for m in pkgutil.walk_packages(toolkit.__path__, "toolkit.")]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as e:  # report every failure, not just the first
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(f"[check_install] imported {len(names) - len(failed)}/{len(names)} modules")
if failed:
    print("\n".join(failed), file=sys.stderr)
    sys.exit(1)
PY

# Every console script declared in setup.py answers --help.
scripts=$("$vpy" - <<'PY'
from importlib.metadata import distribution

eps = distribution("toolkit").entry_points
print(" ".join(sorted(e.name for e in eps if e.group == "console_scripts")))
PY
)
n=0
for s in $scripts; do
  if ! "$venv/bin/$s" --help >/dev/null 2>"$venv/help.err"; then
    echo "[check_install] $s --help failed:" >&2
    cat "$venv/help.err" >&2
    exit 1
  fi
  n=$((n + 1))
done
echo "[check_install] $n console scripts answer --help"
echo "[check_install] OK"
