"""`promedical plan` and `train` as a user runs them: per-role ranks, per-GPU memory, one-line refusals."""
import re
import subprocess
import sys

import pytest


def promedical(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "promedical.cli.main", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def _totals(out: str) -> dict[str, float]:
    """GPU -> estimated GiB, from the memory table rows like `node0:1  reference#0 ...  74.5/80`."""
    return {m[1]: float(m[2]) for m in re.finditer(r"^(node\d+:\d+)\s.*\s([\d.]+)/80$", out, re.M)}


@pytest.mark.parametrize("strategy", ["colocated", "split"])
def test_qwen3_8b_on_two_nodes_shows_ranks_and_fits_every_gpu(strategy):
    proc = promedical("plan", "--config", "qwen3-8b", "--cluster", "2x8", "--set", f"placement.strategy={strategy}")
    assert proc.returncode == 0, proc.stderr
    assert "ranks: policy 8 (DeepSpeed ZeRO-3 data-parallel), reference 8, reward 8, generator 8" in proc.stdout
    totals = _totals(proc.stdout)
    assert len(totals) == 16 and max(totals.values()) <= 80
    assert "WEIGHTS  GRADS  OPTIMIZER  KV_CACHE  WORKING  TOTAL" in proc.stdout


def test_qwen3_8b_on_one_eight_gpu_node_is_refused_with_the_memory():
    proc = promedical("plan", "--config", "qwen3-8b", "--cluster", "1x8")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "needs an estimated 782.2 GiB of GPU memory (policy 8 x 23.3 + reference 8 x 19.3" in proc.stderr
    assert "8 GPUs x 80 GiB = 640.0 GiB" in proc.stderr


def test_smaller_gpus_refuse_the_gpu_that_does_not_fit():
    proc = promedical("plan", "--config", "qwen3-8b", "--cluster", "2x8", "--gpu-memory-gib", "64")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    # 64-GiB GPUs: 2 x 19.26 + 0.45 x 64 = 67.3 GiB where reference, reward and generator share a GPU
    assert "node0 GPU 1: estimated 67.3 GiB > 64.0 GiB (reference#0 19.3 + reward#0 19.3 + generator#0 28.8" \
        in proc.stderr


def test_cpu_plan_on_this_machine_has_nothing_to_estimate():
    proc = promedical("plan", "--config", "tiny")
    assert proc.returncode == 0, proc.stderr
    assert "no replica asks for a GPU" in proc.stdout and "on this machine" in proc.stdout


@pytest.mark.parametrize("override, key", [
    ("placement.roles.policy.num_cpus=64", "cannot place group 'shared' on this machine"),
    ("generator.tensor_parallel_size=2", "generator.tensor_parallel_size=2 needs 2 GPUs"),
])
def test_train_refuses_a_plan_this_machine_cannot_hold_before_starting_anything(tmp_path, override, key):
    run_dir = tmp_path / "run"
    proc = promedical("train", "--config", "tiny", "--run-dir", str(run_dir), "--set", override, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert key in proc.stderr
    assert not run_dir.exists()                      # nothing written, no Ray started
