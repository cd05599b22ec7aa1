"""`auto` dtypes: bfloat16 where the device computes it natively, float32 elsewhere (pure; torch not imported).

A CPU computes bf16 natively with AVX512-BF16 or AMX-BF16 (the `avx512_bf16` / `amx_bf16` flags of
/proc/cpuinfo). Without them PyTorch and oneDNN emulate bf16 and a matmul is tens of times slower than
in fp32 (40x measured on an AVX2-only Zen 3), so `auto` picks fp32 there. A CUDA GPU counts as native
when torch reports bf16 support (Ampere or newer). PROMEDICAL_CPU_FLAGS replaces the CPU's flags (a
space- or comma-separated list), so a test can show what an AVX2-only CPU resolves to.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CPU_FLAGS_ENV = "PROMEDICAL_CPU_FLAGS"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class CpuFlags:
    flags: frozenset[str]
    source: str                          # where they came from: "/proc/cpuinfo" or "$PROMEDICAL_CPU_FLAGS"


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str                           # float32 | bfloat16 (| float16 when asked for)
    reason: str                          # one line: why, for config.yaml and the console


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuFlags:
    """This machine's CPU flags (the first `flags` line of `cpuinfo`), or the override's."""
    override = os.environ.get(CPU_FLAGS_ENV)
    if override is not None:
        return CpuFlags(frozenset(override.replace(",", " ").split()), f"${CPU_FLAGS_ENV}")
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags") and ":" in line:
                return CpuFlags(frozenset(line.split(":", 1)[1].split()), str(cpuinfo))
    except OSError:
        pass
    return CpuFlags(frozenset(), f"{cpuinfo} (unreadable: no flags)")


def resolve_dtype(requested: str, device: str, flags: CpuFlags, cuda_bf16: bool | None = None) -> DtypeChoice:
    """`requested` (auto or a dtype name) for a role on `device` ("cpu" or "cuda").

    `cuda_bf16`: torch.cuda.is_bf16_supported() where the deciding process sees the GPU, None where it
    does not (a GPU role on a remote node): bf16 is assumed then, and the reason says so.
    """
    if requested != "auto":
        return DtypeChoice(requested, "set explicitly")
    if device == "cuda":
        if cuda_bf16 is None:
            return DtypeChoice("bfloat16", "auto: CUDA GPU not visible from the driver, bf16 assumed "
                                           "(set the key to float32 for a GPU older than Ampere)")
        if cuda_bf16:
            return DtypeChoice("bfloat16", "auto: CUDA GPU with native bf16")
        return DtypeChoice("float32", "auto: CUDA GPU without bf16 support")
    native = [f for f in NATIVE_BF16_FLAGS if f in flags.flags]
    if native:
        return DtypeChoice("bfloat16", f"auto: native bf16 on this CPU ({'/'.join(native)} in {flags.source})")
    return DtypeChoice("float32", f"auto: no native bf16 on this CPU (no {'/'.join(NATIVE_BF16_FLAGS)} "
                                  f"in {flags.source}), emulated bf16 is far slower than fp32")
