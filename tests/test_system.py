import json
import os
import subprocess
import sys

import pytest

import bitmamba
from bitmamba.cli import main
from skips import not_applicable


def test_version_is_exposed():
    assert bitmamba.__version__.count(".") == 2


def test_cpu_info_is_consistent():
    info = bitmamba.cpu_info()
    assert info["supported_isas"][0] == "scalar"
    assert info["isa"] in info["supported_isas"]
    assert set(info["supported_isas"]) <= set(info["compiled_isas"])
    assert info["threads"] >= 1 and info["default_threads"] >= 1
    if info["features"]["arch"] == "x86_64" and info["features"]["avx2"] and info["features"]["fma"]:
        assert "avx2" in info["supported_isas"]


def test_kernel_table_is_consistent():
    info = bitmamba.cpu_info()
    sets = info["kernel_sets"]
    assert [k["name"] for k in sets if k["supported"]] == info["supported_isas"]
    assert len({k["name"] for k in sets}) == len(sets)
    for k in sets:
        assert k["arch"] in ("any", "x86_64", "aarch64")
        assert k["compiled"] == (k["arch"] in ("any", info["features"]["arch"]))
        assert not k["supported"] or (k["compiled"] and all(info["features"][f] for f in k["needs"]))


def test_kernel_table_says_what_the_cpu_lacks():
    info = bitmamba.cpu_info()
    for k in info["kernel_sets"]:
        if not k["compiled"]:
            assert k["missing"] == []
            continue
        assert k["missing"] == [f for f in k["needs"] if not info["features"][f]]
        assert k["supported"] == (k["missing"] == [])


def test_amx_row_and_tile_permission_are_reported():
    info = bitmamba.cpu_info()
    rows = [k["name"] for k in info["kernel_sets"]]
    amx = next(k for k in info["kernel_sets"] if k["name"] == "amx")
    assert amx["arch"] == "x86_64" and rows.index("amx") == rows.index("avx512vbmi") + 1
    assert rows.index("avx512vbmi") == rows.index("avx512") + 1
    # avxvnni (AVX2 + AVX-VNNI) between avx2 and avx512: a CPU with both VNNI kinds runs the 512-bit row.
    assert rows.index("avxvnni") == rows.index("avx2") + 1 and rows.index("avx512") == rows.index("avxvnni") + 1
    assert {"avx512vnni", "avx512vbmi", "amx_tile", "amx_int8", "amx"} <= set(amx["needs"])
    perm = info["amx_permission"]
    assert perm["granted"] == (perm["status"] == "granted")
    assert perm["status"].split(" (")[0] in ("granted", "denied", "not requested", "not applicable")
    # The `amx` feature is CPUID + XCR0 + the granted request: never without the grant.
    assert info["features"]["amx"] == perm["granted"]
    if info["features"]["arch"] != "x86_64":
        assert perm["status"].startswith("not applicable")


def test_env_asking_for_amx_without_it_fails_clearly():
    if "amx" in bitmamba.cpu_info()["supported_isas"]:
        not_applicable("this CPU runs the amx kernels")
    env = dict(os.environ, BITMAMBA_ISA="amx")
    r = subprocess.run([sys.executable, "-m", "bitmamba", "info"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "BITMAMBA_ISA=amx asks for a kernel set this CPU cannot run" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    if bitmamba.cpu_info()["features"]["arch"] == "x86_64":
        assert "AMX tile-data permission: " in r.stderr and "amx" in r.stderr


def test_cli_info_lists_the_amx_row(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("amx "))
    assert "needs: " in line and "amx_tile amx_int8 amx" in line
    info = bitmamba.cpu_info()
    if "amx" not in info["supported_isas"]:
        amx = next(k for k in info["kernel_sets"] if k["name"] == "amx")
        assert ("this CPU lacks " + " ".join(amx["missing"])) in line or "not in this build" in line
    assert f"amx tile data:  {info['amx_permission']['status']}" in out


def test_set_isa_switches_and_rejects_unsupported():
    before = bitmamba.get_isa()
    try:
        bitmamba.set_isa("scalar")
        assert bitmamba.get_isa() == "scalar"
        with pytest.raises(ValueError, match="unknown kernel set"):
            bitmamba.set_isa("sse9")
        unsupported = [k["name"] for k in bitmamba.cpu_info()["kernel_sets"] if not k["supported"]]
        with pytest.raises(ValueError, match="not supported"):
            bitmamba.set_isa(unsupported[0])
    finally:
        bitmamba.set_isa(before)


def test_thread_count_setting():
    before = bitmamba.get_num_threads()
    try:
        bitmamba.set_num_threads(3)
        assert bitmamba.get_num_threads() == 3
        with pytest.raises(ValueError):
            bitmamba.set_num_threads(0)
    finally:
        bitmamba.set_num_threads(before)


def test_env_forces_scalar_in_a_fresh_process():
    env = dict(os.environ, BITMAMBA_ISA="scalar", BITMAMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "bitmamba", "info", "--json"], env=env,
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["isa"] == "scalar" and info["isa_forced_by_env"] and info["threads"] == 1


def test_env_asking_for_missing_isa_fails_clearly():
    env = dict(os.environ, BITMAMBA_ISA="nonsense")
    r = subprocess.run([sys.executable, "-m", "bitmamba", "info"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "unknown kernel set 'nonsense'" in r.stderr


def test_cli_info_and_help(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "kernel set:" in out and bitmamba.__version__ in out
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert main([]) == 2
