"""Full-parameter vs LoRA GRPO on one preset, side by side: step time per phase, bytes per weight sync, peak memory.

    flock /tmp/heavy.lock python benchmarks/bench_lora.py [--preset demo] [--ranks 8 32] [--steps 4]

Each arm is its own `promedical train` process (benchmarks/bench_step.py run_preset: medians over the
steps after the first, peak RSS of the process tree). Bytes per sync are those of the payload the policy
exports for one version, built here from the preset's model: every weight in the generators' dtype for
full-parameter, the PEFT adapter (actors/lora.py AdapterPayload) for LoRA.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import PHASES, header, run_preset  # noqa: E402


def sync_bytes(preset: str, rank: int) -> int:
    """Bytes of one version's sync payload of `preset` at LoRA `rank` (0: the full weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    from promedical.actors.lora import LoraSettings, adapter_payload, wrap
    from promedical.deploy.build import lora_settings, policy_kwargs, resolve_models
    from promedical.deploy.config import load_config

    cfg = load_config(preset, [f"model.lora.rank={rank}"])
    path, _ = resolve_models(cfg)
    dtype = getattr(torch, policy_kwargs(cfg, path)["export_dtype"])
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if not rank:
        return sum(t.numel() * dtype.itemsize for t in model.state_dict().values())
    settings: LoraSettings = lora_settings(cfg)
    return adapter_payload(wrap(model, settings), dtype, path).nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--ranks", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print(header(), flush=True)
    arms = [("full-parameter", 0)] + [(f"LoRA rank {r}", r) for r in args.ranks]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rank in arms:
            work = Path(tmp) / f"rank{rank}"
            work.mkdir()
            overrides = args.overrides + ([f"model.lora.rank={rank}"] if rank else [])
            row = run_preset(args.preset, args.steps, work, overrides)
            row.update(name=name, sync_mib=sync_bytes(args.preset, rank) / 2**20)
            rows.append(row)
            print(f"{name}: done, step {row['step_s']:.2f} s", flush=True)
    print(f"{args.preset}, {args.steps} steps per arm (medians of steps 2..{args.steps})")
    print(f"{'arm':<16}{'step s':>8}" + "".join(f"{p:>10}" for p in PHASES) + f"{'sync MiB':>10}{'peak GiB':>10}")
    for r in rows:
        print(f"{r['name']:<16}{r['step_s']:>8.2f}" + "".join(f"{r[p]:>10.2f}" for p in PHASES)
              + f"{r['sync_mib']:>10.2f}{r['peak_gib']:>10.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
