"""GPU weight-sync paths: CUDA IPC between two actors on one GPU, the collective sync over NCCL across two GPUs."""
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu
needs_gpus = lambda n: pytest.mark.skipif(torch.cuda.device_count() < n, reason=f"needs {n} CUDA GPU(s)")

def setup_module(module):
    """Ship this module's stand-in classes to Ray workers by value (tests/ is not importable there)."""
    from ray import cloudpickle
    cloudpickle.register_pickle_by_value(module)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Engine:
    def __init__(self, module) -> None:
        self.module = module


class GpuPolicy:
    """Stand-in policy holding a small CUDA module where weight_sync looks for it (`engine.module`)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.engine = _Engine(torch.nn.Linear(64, 32).cuda())
        self.rank, self.zero_stage, self.export_dtype = 0, 0, torch.float32

    def checksum(self) -> float:
        return float(sum(p.double().sum() for p in self.engine.module.state_dict().values()))


class GpuReceiver:
    """Stand-in generator: lists the payload in its own process, as the vLLM worker does."""

    def load_weights(self, version: int, payload) -> float:
        import torch as t
        self.weights = [(k, v.clone()) for k, v in payload]
        t.cuda.synchronize()
        return 0.0

    def checksum(self) -> float:
        return float(sum(v.double().sum() for _, v in self.weights))


def _policy_group(handle):
    from promedical.actors.groups import PolicyGroup
    return PolicyGroup([handle], zero_stage=0, mini_batches=1)


@pytest.fixture(scope="module")
def gpu_ray(own_ray):
    import ray
    ray.init(num_gpus=torch.cuda.device_count(), logging_level="ERROR")
    yield ray
    ray.shutdown()


@needs_gpus(1)
def test_cuda_ipc_maps_the_policy_tensors_on_the_same_gpu(gpu_ray):
    from promedical.actors.groups import GeneratorGroup
    from promedical.actors.weight_sync import CudaIpcSync, wait

    ray = gpu_ray
    policy = ray.remote(GpuPolicy).options(num_gpus=0.5).remote()
    receiver = ray.remote(GpuReceiver).options(num_gpus=0.5).remote()
    wait(CudaIpcSync(policy=_policy_group(policy), generators=GeneratorGroup([receiver])).start(1), timeout_s=60)
    assert ray.get(receiver.checksum.remote()) == pytest.approx(ray.get(policy.checksum.remote()))


@needs_gpus(2)
def test_collective_sync_over_nccl_reaches_a_generator_on_another_gpu(gpu_ray):
    from promedical.actors.groups import GeneratorGroup
    from promedical.actors.sync_collective import Rendezvous
    from promedical.actors.weight_sync import CollectiveSync, wait

    ray = gpu_ray
    policy = ray.remote(GpuPolicy).options(num_gpus=1).remote()
    receiver = ray.remote(GpuReceiver).options(num_gpus=1).remote()
    spec = Rendezvous(host="127.0.0.1", port=_free_port(), world_size=2, backend="nccl", timeout_s=120)
    sync = CollectiveSync(policy=_policy_group(policy), generators=GeneratorGroup([receiver]), rendezvous=spec,
                          bucket_bytes=4096)
    wait(sync.start(1), timeout_s=120)
    assert ray.get(receiver.checksum.remote()) == pytest.approx(ray.get(policy.checksum.remote()))
