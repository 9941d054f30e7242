#!/usr/bin/env bash
# Development build without pip: compiles the _C extension into build/dev and links it into
# python/bitmamba, so `PYTHONPATH=python python -m pytest` and `PYTHONPATH=python python -m bitmamba`
# use this working tree. (Users install with `pip install .`; see README.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ ! -f build/dev/CMakeCache.txt ]; then
  cmake -S . -B build/dev -G Ninja -Wno-dev -DCMAKE_BUILD_TYPE=Release -DBITMAMBA_BUILD_PYTHON=ON \
    -DPython_EXECUTABLE="$(command -v "$PY")" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
    -DSKBUILD_PROJECT_VERSION="$("$PY" -c 'exec(open("python/bitmamba/_version.py").read()); print(__version__)')" >/dev/null
fi
cmake --build build/dev --parallel "${JOBS:-2}"
so=$(ls build/dev/_C*.so | head -n1)
ln -sf "../../$so" python/bitmamba/
echo "built $so -> python/bitmamba/"
