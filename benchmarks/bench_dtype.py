"""fp32 against bf16 on this CPU: the matmul the issue measured, plain and under autocast, and what `auto` picks.

    python benchmarks/bench_dtype.py [--threads 1] [--repeat 20]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_dtype.py    # oneDNN without AVX512-BF16/AMX: bf16 emulated

The shapes are one SmolLM2-135M MLP projection for a 512-token micro-batch (512x576 by 576x1536).
runtime/dtypes.py resolves `auto` from the CPU flags alone; this script shows why, on the machine at hand.
"""
from __future__ import annotations

import argparse
import os
import time


def median_ms(fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import torch

    from promedical.runtime.dtypes import NATIVE_BF16_FLAGS, cpu_flags, resolve_dtype

    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    a, b = torch.randn(512, 576), torch.randn(576, 1536)
    a16, b16 = a.bfloat16(), b.bfloat16()

    def autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return a @ b

    fp32 = median_ms(lambda: a @ b, args.repeat)
    bf16 = median_ms(lambda: a16 @ b16, args.repeat)
    auto = median_ms(autocast, args.repeat)
    shown = [f for f in ("avx2", "avx512f", *NATIVE_BF16_FLAGS) if f in flags.flags]
    print(f"CPU flags ({flags.source}): {' '.join(shown) or '-'}; ONEDNN_MAX_CPU_ISA="
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '-')}; threads {args.threads}; load {os.getloadavg()[0]:.1f}")
    print(f"{'matmul 512x576 @ 576x1536':<28}{'ms':>8}{'x fp32':>8}")
    for name, ms in (("float32", fp32), ("bfloat16", bf16), ("bf16 autocast", auto)):
        print(f"{name:<28}{ms:>8.1f}{ms / fp32:>8.2f}")
    print(f"auto resolves to: {resolve_dtype('auto', 'cpu', flags).dtype}")


if __name__ == "__main__":
    main()
