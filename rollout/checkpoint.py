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

from promedical.rollout.loop import InFlight, LoopState, Roles, finish_inflight
from promedical.rollout.prompts import PromptSource, SourceState, requests_of
from promedical.storage.checkpoints import Checkpoints
from promedical.storage.atomic import atomic_write_bytes
from promedical.storage.run_dir import write_batch_file


def save(checkpoints: Checkpoints, state: LoopState, source: PromptSource, roles: Roles) -> Path:
    partial = checkpoints.begin(state.step)
    roles.policy.save(str(partial))                # every rank writes its ZeRO partition
    buffer = []
    for k, (flight, batch) in enumerate(finish_inflight(roles, state.inflight)):
        write_batch_file(partial / f"buffer_{k}.arrow", batch)
        buffer.append({"file": f"buffer_{k}.arrow", "version": flight.version,
                       "prompts": [[gid, rec.prompt_id] for gid, rec in flight.prompts]})
    manifest = {"step": state.step, "version": state.version, "source": vars(source.state), "buffer": buffer}
    atomic_write_bytes(partial / "state.json", json.dumps(manifest, indent=1).encode())
    return checkpoints.commit(state.step, partial)


def restore(path: Path, source: PromptSource, roles: Roles) -> LoopState:
    """Load `path` into the actors and the source; returns the state to continue from."""
    manifest = json.loads((path / "state.json").read_text())
    versions = roles.policy.restore(str(path))
    if set(versions) != {manifest["version"]}:
        raise RuntimeError(f"{path}: policy rank versions {versions} != manifest version {manifest['version']}")
    version = versions[0]
    roles.sync.wait(roles.sync.start(version))
    source.state = SourceState(**manifest["source"])
    rubrics = source.rubrics()
    inflight: deque[InFlight] = deque()
    for item in manifest["buffer"]:
        batch = ipc.open_file(pa.memory_map(str(path / item["file"]))).read_all().combine_chunks().to_batches()[0]
        prompts = [(int(gid), rubrics[pid]) for gid, pid in item["prompts"]]
        inflight.append(InFlight(generated=roles.generators.restored(batch, requests_of(prompts)),
                                 version=int(item["version"]), prompts=prompts))
    return LoopState(step=int(manifest["step"]), version=version, inflight=inflight)
