"""`auto` dtypes by hardware (runtime/dtypes.py) and intra-op threads by placement (runtime/threads.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from promedical.deploy.auto_dtypes import resolve_auto_dtypes
from promedical.deploy.build import policy_kwargs, reference_kwargs, reward_kwargs
from promedical.deploy.config import dump_config, load_config
from promedical.runtime.dtypes import CPU_FLAGS_ENV, CpuFlags, cpu_flags, resolve_dtype
from promedical.runtime.threads import NODE_CORES, node_cores

AVX2_ONLY = "fpu sse4_2 avx avx2 fma"             # a Zen 3 server: no avx512_bf16, no amx_bf16


def test_cpu_without_native_bf16_resolves_fp32_and_with_it_bf16(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_flags(cpuinfo).flags >= {"avx2", "avx512_bf16"}
    avx2 = CpuFlags(frozenset(AVX2_ONLY.split()), "test")
    assert resolve_dtype("auto", "cpu", avx2).dtype == "float32"
    assert resolve_dtype("auto", "cpu", cpu_flags(cpuinfo)).dtype == "bfloat16"
    assert resolve_dtype("auto", "cpu", CpuFlags(frozenset({"amx_bf16"}), "test")).dtype == "bfloat16"
    assert resolve_dtype("bfloat16", "cpu", avx2).dtype == "bfloat16"          # explicit wins
    assert resolve_dtype("auto", "cuda", avx2, cuda_bf16=True).dtype == "bfloat16"
    assert resolve_dtype("auto", "cuda", avx2, cuda_bf16=False).dtype == "float32"


def test_demo_on_an_avx2_cpu_records_fp32_and_why_in_config_yaml(monkeypatch):
    monkeypatch.setenv(CPU_FLAGS_ENV, AVX2_ONLY)
    cfg = resolve_auto_dtypes(load_config("demo", ["rollout.steps=2"]))
    assert (cfg.model.train_dtype, cfg.generator.dtype, cfg.reward.dtype) == ("float32",) * 3
    written = yaml.safe_load(dump_config(cfg))              # what the run directory's config.yaml holds
    assert written["model"]["train_dtype"] == "float32"
    assert "no native bf16" in written["resolved"]["model.train_dtype"]
    assert policy_kwargs(cfg, "m")["export_dtype"] == "float32"
    reloaded = load_config_text(dump_config(cfg))           # --resume reads it back, strictly
    assert reloaded.resolved == cfg.resolved and reloaded.generator.dtype == "float32"
    monkeypatch.setenv(CPU_FLAGS_ENV, "avx2 avx512f avx512_bf16")
    native = resolve_auto_dtypes(load_config("demo"))
    assert (native.model.train_dtype, native.generator.dtype) == ("bfloat16", "bfloat16")
    assert policy_kwargs(native, "m")["export_dtype"] == "bfloat16"
    assert resolve_auto_dtypes(load_config("tiny")).model.train_dtype == "float32"   # the tests' preset pins it


def load_config_text(text: str):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return load_config(f.name)
    finally:
        os.unlink(f.name)


def test_threads_follow_the_placement():
    sync = load_config("demo")                               # colocated, synchronous: roles take turns
    assert {policy_kwargs(sync, "m")["threads"], reference_kwargs(sync, "m")["threads"],
            reward_kwargs(sync, "m")["threads"]} == {NODE_CORES}
    overlapped = load_config("demo", ["rollout.max_staleness=1"])   # generation overlaps: num_cpus 0.25 -> 1
    assert policy_kwargs(overlapped, "m")["threads"] == 1
    split = load_config("demo", ["rollout.max_staleness=1", "placement.roles.reward.num_cpus=2"])
    assert reward_kwargs(split, "m")["threads"] == 2
    fixed = load_config("demo", ["trainer.threads=1"])
    assert {policy_kwargs(fixed, "m")["threads"], reward_kwargs(fixed, "m")["threads"]} == {1}


def test_a_ray_actor_computes_on_every_core_it_is_given(local_ray):
    """Ray leaves a 0.25-CPU actor one thread; apply_threads(NODE_CORES) gives it the node's cores."""
    @local_ray.remote(num_cpus=0.25)
    def threads(apply: bool) -> int:
        import torch
        from promedical.runtime.threads import apply_threads
        if apply:
            apply_threads(NODE_CORES)
        return torch.get_num_threads()

    assert local_ray.get(threads.remote(False)) == 1
    assert local_ray.get(threads.remote(True)) == node_cores()


@pytest.mark.parametrize("override, key", [
    ("model.train_dtype=fp8", "model.train_dtype"),
    ("generator.dtype=half", "generator.dtype"),
    ("reward.dtype=bf16", "reward.dtype"),
    (f"trainer.threads={os.cpu_count() + 1}", "trainer.threads"),
])
def test_bad_dtype_or_too_many_threads_exits_2_naming_the_key(tmp_path, override, key):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "promedical.cli.main", "train", "--config", "demo",
                           "--set", override, "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and key in lines[0], proc.stderr
    assert "set " in lines[0]                               # the fix
    assert not run_dir.exists()
