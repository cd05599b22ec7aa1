"""Save and restore a run between steps: policy (HF + optimizer + RNG), data position, buffered rollouts.

    step_N/policy/      Hugging Face checkpoint (transformers and vLLM load it)
    step_N/engine/      DeepSpeed engine state: weights, optimizer, client state (version, torch RNG)
    step_N/buffer_K.arrow   generated rollouts not yet trained on (asynchronous runs)
    step_N/state.json   next step, policy version, prompt-source position, buffer manifest
"""
from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import ray

from promedical.rollout.loop import InFlight, LoopState, Roles, finish_inflight, sync_weights, wait_sync
from promedical.rollout.prompts import PromptSource, SourceState
from promedical.storage.checkpoints import Checkpoints
from promedical.storage.run_dir import atomic_write_bytes


def save(checkpoints: Checkpoints, state: LoopState, source: PromptSource, roles: Roles) -> Path:
    partial = checkpoints.begin(state.step)
    ray.get(roles.policy.save.remote(str(partial)))
    buffer = []
    for k, (flight, batch) in enumerate(finish_inflight(state.inflight)):
        sink = pa.BufferOutputStream()
        with ipc.new_file(sink, batch.schema) as writer:
            writer.write_batch(batch)
        atomic_write_bytes(partial / f"buffer_{k}.arrow", sink.getvalue().to_pybytes())
        buffer.append({"file": f"buffer_{k}.arrow", "version": flight.version,
                       "prompts": [[gid, rec.prompt_id] for gid, rec in flight.prompts]})
    manifest = {"step": state.step, "version": state.version, "source": vars(source.state), "buffer": buffer}
    atomic_write_bytes(partial / "state.json", json.dumps(manifest, indent=1).encode())
    return checkpoints.commit(state.step, partial)


def restore(path: Path, source: PromptSource, roles: Roles, sync_timeout_s: float) -> LoopState:
    """Load `path` into the actors and the source; returns the state to continue from."""
    manifest = json.loads((path / "state.json").read_text())
    version = ray.get(roles.policy.restore.remote(str(path)))
    if version != manifest["version"]:
        raise RuntimeError(f"{path}: policy version {version} != manifest version {manifest['version']}")
    wait_sync(sync_weights(roles, version), sync_timeout_s, version)
    source.state = SourceState(**manifest["source"])
    rubrics = source.rubrics()
    inflight: deque[InFlight] = deque()
    for item in manifest["buffer"]:
        batch = ipc.open_file(pa.memory_map(str(path / item["file"]))).read_all().combine_chunks().to_batches()[0]
        prompts = [(int(gid), rubrics[pid]) for gid, pid in item["prompts"]]
        inflight.append(InFlight(parts=[ray.put(batch)], version=int(item["version"]), prompts=prompts))
    return LoopState(step=int(manifest["step"]), version=version, inflight=inflight)
