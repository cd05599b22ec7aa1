"""benchmarks/gpu_check.py: its CPU dry run exercises the same phases (gloo, tiny model) on every machine;
the `gpu`-marked tests run the role classes on CUDA and skip cleanly without it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _run(*args: str, timeout: int):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def _rows(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines() if line and not line.startswith(("gpu_check", "phase"))}


@pytest.mark.slow
def test_dry_run_runs_the_role_and_sync_phases_on_cpu(tmp_path):
    out = _run("--dry-run", "--phases", "logprobs,reference,policy-zero0,ipc,collective", "--work", str(tmp_path),
               timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = _rows(out.stdout)
    for phase in ("logprobs", "reference", "policy-zero0", "ipc", "collective"):
        assert "  ok " in rows[phase], rows.get(phase)
    assert "ray/vllm imported: False" in out.stdout and "all phases ok" in out.stdout



@pytest.mark.gpu
@needs_cuda
def test_gpu_check_passes_on_cuda(tmp_path):
    """The whole check on the GPU, within its 8-minute budget."""
    out = _run("--work", str(tmp_path), timeout=540)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-3000:]
    assert "all phases ok" in out.stdout


@pytest.mark.gpu
@needs_cuda
def test_reference_lives_on_its_gpu_in_bf16():
    from promedical.actors.models import resolve_model
    from promedical.actors.reference import Reference
    ref = Reference(model_path=resolve_model("tiny"), temperature=1.0, dtype="bfloat16")
    param = next(ref.model.parameters())
    assert param.device.type == "cuda" and param.dtype == torch.bfloat16


@pytest.mark.gpu
@needs_cuda
def test_logprobs_with_cuda_tensors_match_the_cpu():
    from transformers import AutoModelForCausalLM

    from promedical.actors.logprobs import forward_logprobs, make_group_micro_batch
    from promedical.actors.models import resolve_model
    torch.backends.cuda.matmul.allow_tf32 = False
    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny"), dtype=torch.float32).eval()
    mb = make_group_micro_batch([[5, 6, 7, 8]] * 3, [[9, 10, 11], [12], []], [0, 1, 2])
    with torch.no_grad():
        on_cpu = forward_logprobs(model, mb, 1.0)
        on_gpu = forward_logprobs(model.cuda(), mb, 1.0)
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)
