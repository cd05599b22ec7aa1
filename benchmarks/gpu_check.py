"""GPU check: the role classes in-process on one CUDA GPU, each phase timed, in under 8 minutes.

    python benchmarks/gpu_check.py                  # on a CUDA machine: every phase (default model smollm2-shape)
    python benchmarks/gpu_check.py --dry-run        # no GPU needed: the same phases on the CPU (gloo), tiny model
    python benchmarks/gpu_check.py --phases logprobs,reference --model tiny --json out.json

Phases (benchmarks/gpu_check_roles.py, benchmarks/gpu_check_sync.py):
    logprobs     shared-prefix logprobs with CUDA tensors vs the full-sequence forward (fp32), then timed in bf16
    reference    actors.reference.Reference on the GPU in its configured dtype (bf16 weights there)
    reward       actors.reward_model.RewardModel with a trained-format decoder grader (criterion-last layout)
    policy-zeroN actors.policy.Policy under DeepSpeed ZeRO-0, 2 and 3 on one rank (nccl): two train steps
    ipc          a CUDA-IPC payload of the ZeRO-0 policy's weights mapped in a spawned process, with the fence
    collective   sender half here, receiver half (CollectivePayload) in a spawned process; nccl with 2 GPUs,
                 else gloo; plus policy_send (ZeRO-3 gathers) over a 1-rank nccl group
Models: `tiny` (the tiny preset's), `smollm2-shape` (random weights in SmolLM2-135M's shape with the tiny
tokenizer: real-sized compute where the converted SmolLM2 is not on the machine), `smollm2`, or a checkpoint
directory. Nothing is downloaded. Ray and vLLM are never imported (the check fails if one was).

The GPU machine has no DeepSpeed: carry it (README "GPU paths: what has run on a GPU" says how).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
PHASES = ("logprobs", "reference", "reward", "policy-zero0", "ipc", "collective", "policy-zero2", "policy-zero3")
BUDGET_S = 480.0


def ensure_package() -> None:
    """Make `promedical` importable from this checkout where it is not installed (the GPU machine)."""
    try:
        import promedical  # noqa: F401
        return
    except ImportError:
        pass
    link_dir = Path(tempfile.gettempdir()) / "promedical-src"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / "promedical"
    if not link.exists():
        link.symlink_to(ROOT)
    sys.path.insert(0, str(link_dir))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(link_dir), os.environ.get("PYTHONPATH", "")])


def smollm2_shape(out: Path) -> str:
    """A random-weight Llama in SmolLM2-135M's shape (deploy/memory_plan.py KNOWN_SHAPES), tiny tokenizer."""
    if (out / "config.json").exists():
        return str(out)
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from promedical.actors.models import resolve_model
    tok = AutoTokenizer.from_pretrained(resolve_model("tiny"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def model_path(name: str, work: Path) -> str:
    from promedical.actors.models import resolve_model
    return smollm2_shape(work / "smollm2-shape") if name == "smollm2-shape" else resolve_model(name)


def run(args: argparse.Namespace) -> int:
    import torch

    from gpu_check_roles import Phase, Workload, logprob_phase, policy_phase, reference_phase, reward_phase
    from gpu_check_sync import collective_phase, ipc_phase, policy_send_phase

    started = time.perf_counter()
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    path = model_path(args.model or ("smollm2-shape" if device.type == "cuda" else "tiny"), work)
    from transformers import AutoConfig
    vocab = AutoConfig.from_pretrained(path).vocab_size
    bf16 = device.type == "cuda" or args.bf16
    w = (Workload(8, 8, 128, 256, min(vocab, 49152) - 1, bf16) if device.type == "cuda" and not args.small
         else Workload(2, 2, 16, 16, min(vocab, 500) - 1, bf16))
    print(_header(device, path, w), flush=True)
    wanted = [p for p in PHASES if p in args.phases.split(",")] if args.phases else list(PHASES)
    results: list[Phase] = []
    ref_logprobs, policy0 = None, None

    def record(phase: Phase) -> None:
        results.append(phase)
        print(_row(phase), flush=True)

    for name in wanted:
        if time.perf_counter() - started > args.budget_s:
            record(Phase(name, ok=False, note=f"not run: the {args.budget_s:.0f}s budget is spent"))
            continue
        try:
            if name == "logprobs":
                record(logprob_phase(path, device, w))
            elif name == "reference":
                phase, ref_logprobs = reference_phase(path, device, w)
                record(phase)
            elif name == "reward":
                record(reward_phase(path, device, w, work))
            elif name.startswith("policy-zero"):
                stage = int(name[-1])
                phase, policy = policy_phase(path, device, w, stage, ref_logprobs)
                record(phase)
                if stage == 3:
                    record(policy_send_phase(policy, device))
                if stage == 0 and ({"ipc", "collective"} & set(wanted)):
                    policy0 = policy
                del policy
            elif name in ("ipc", "collective"):
                if policy0 is None:
                    record(Phase(name, ok=False, note="needs the policy-zero0 phase first"))
                else:
                    record(ipc_phase(policy0, device) if name == "ipc" else collective_phase(policy0, device))
            if name == "collective" or (name == "ipc" and "collective" not in wanted):
                policy0 = None
        except Exception as exc:   # noqa: BLE001 - a failed phase is reported, the others still run
            record(Phase(name, ok=False, note=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    leaked = [m for m in ("ray", "vllm") if m in sys.modules]
    if leaked:
        record(Phase("imports", ok=False, note=f"{', '.join(leaked)} imported: the check must run without them"))
    total = time.perf_counter() - started
    failed = [p.name for p in results if not p.ok]
    print(f"total {total:.1f}s; ray/vllm imported: {bool(leaked)}; "
          + (f"FAILED: {', '.join(failed)}" if failed else "all phases ok"), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "model": path, "total_seconds": total,
                                               "phases": [dict(vars(p), tokens_per_s=p.tokens_per_s)
                                                          for p in results]}, indent=1, default=str))
    return 1 if failed else 0


def _header(device, path: str, w) -> str:
    import torch
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run: gloo, no CUDA)"
    try:
        import deepspeed
        ds = deepspeed.__version__
    except ImportError:
        ds = "missing"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"gpu_check {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {name}; torch {torch.__version__}, "
            f"deepspeed {ds}; load {load:.1f}; model {path}; workload {w.groups}x{w.group_size} rows, prompt "
            f"{w.prompt_len}, response <= {w.response_len} ({w.tokens()} tokens a step), bf16 {w.bf16}\n"
            f"{'phase':<20}{'seconds':>9}{'tokens':>9}{'tokens/s':>11}  ok    note")


def _row(p) -> str:
    rate = f"{p.tokens_per_s:,.0f}" if p.tokens else "-"
    return f"{p.name:<20}{p.seconds:>9.3f}{p.tokens or '-':>9}{rate:>11}  {'ok ' if p.ok else 'FAIL'}  {p.note}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU (gloo) even where CUDA is visible")
    parser.add_argument("--phases", default="", help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--model", default="", help="tiny | smollm2-shape | smollm2 | checkpoint dir")
    parser.add_argument("--small", action="store_true", help="the dry run's small workload on the GPU too")
    parser.add_argument("--bf16", action="store_true", help="bf16 training/export on the CPU too (always on a GPU)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="phases not started after this are skipped")
    parser.add_argument("--work", default="", help="scratch directory (default: a new temporary one)")
    parser.add_argument("--json", default="", help="also write the phases as JSON here")
    args = parser.parse_args(argv)
    if args.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""     # before torch is imported: DeepSpeed picks the CPU too
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    ensure_package()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
