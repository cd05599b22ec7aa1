"""Builders: config -> keyword arguments -> actors. The only place that reads the config tree."""
from __future__ import annotations

import os
from typing import Any

from promedical.deploy.config import DEFAULT_TIMEOUTS_S, Config, lora_lr, plan_roles, reward_shape
from promedical.deploy.placement import make_plan
from promedical.deploy.placement_ray import place_actors

WORKER_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",   # vLLM runs inside its actor's process: faster start on CPU
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",                   # models are local; never reach for a hub
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_DEDUP_LOGS": "0",
    # Roles share cores when colocated: idle OpenMP threads sleep instead of spinning on a core that
    # another role needs (spinning made overlapped generation and training 5-8x slower on 2 cores).
    "OMP_WAIT_POLICY": "PASSIVE",
}


def start_ray(address: str) -> None:
    """Connect to `address`, or start a local Ray sized to this machine."""
    import ray

    if ray.is_initialized():
        return
    env = dict(WORKER_ENV)
    if "DS_ACCELERATOR" not in os.environ:
        import torch
        if not torch.cuda.is_available():
            env["DS_ACCELERATOR"] = "cpu"
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        # address="local": always a fresh private Ray, never a cluster some earlier `ray start` left running
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=runtime_env,
                 log_to_driver=True, logging_level="WARNING")


def generator_kwargs(cfg: Config, model_path: str) -> dict[str, Any]:
    g = cfg.generator
    return dict(model_path=model_path, seed=cfg.run.seed, max_new_tokens=cfg.rollout.max_new_tokens,
                temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                max_prompt_tokens=cfg.model.max_prompt_tokens, dtype=g.dtype, omp_threads_bind=g.omp_threads_bind,
                kv_cache_gib=g.kv_cache_gib, gpu_memory_utilization=g.gpu_memory_utilization,
                enforce_eager=g.enforce_eager, tensor_parallel_size=g.tensor_parallel_size,
                sleep_between_steps=g.sleep_between_steps,
                lora_rank=0 if cfg.model.lora.merge_for_sync else cfg.model.lora.rank)


def torch_threads(cfg: Config, role: str) -> int:
    """Intra-op threads for a torch role's actor, from trainer.threads and its placement (runtime/threads.py)."""
    from promedical.deploy.placement import role_resources
    from promedical.runtime.threads import role_threads

    takes_turns = cfg.placement.strategy == "colocated" and cfg.rollout.max_staleness == 0
    return role_threads(cfg.trainer.threads, role_resources(cfg.placement, role).num_cpus, takes_turns)


def loss_settings(cfg: Config):
    """The policy loss's hyper-parameters (actors/losses.py LossSettings) from algo.* and rollout.*."""
    from promedical.actors.losses import LossSettings
    from promedical.deploy.config import clip_bounds

    a, r = cfg.algo, cfg.rollout
    low, high = clip_bounds(a)
    return LossSettings(clip_eps_low=low, clip_eps_high=high, dual_clip=a.dual_clip, kl_coef=a.kl_coef,
                        kl_estimator=a.kl_estimator, loss_agg=a.loss_agg, tis_cap=r.tis_cap,
                        norm=float(r.max_new_tokens), mask_truncated=r.overlong == "filter")


def policy_kwargs(cfg: Config, model_path: str) -> dict[str, Any]:
    from promedical.actors.schedules import LrSchedule

    a = cfg.algo
    return dict(model_path=model_path, seed=cfg.run.seed, lr=lora_lr(cfg), weight_decay=a.weight_decay,
                max_grad_norm=a.max_grad_norm, zero_stage=cfg.trainer.zero_stage, backend=cfg.trainer.backend,
                train_dtype=cfg.model.train_dtype, temperature=cfg.rollout.temperature, loss=loss_settings(cfg),
                schedule=LrSchedule(a.lr_schedule, a.warmup_steps, cfg.rollout.steps),
                mini_batches=a.mini_batches, micro_batch_size=a.micro_batch_size, lora=lora_settings(cfg),
                prompts_per_step=cfg.rollout.prompts_per_step, group_size=cfg.rollout.group_size,
                threads=torch_threads(cfg, "policy"), loss_inputs_dir=cfg.run.loss_inputs_dir,
                export_dtype="bfloat16" if cfg.generator.dtype == "bfloat16" else "float32")


def lora_settings(cfg: Config):
    """model.lora.* as actors/lora.py LoraSettings (rank 0: off)."""
    from promedical.actors.lora import LoraSettings

    lora = cfg.model.lora
    targets = lora.target_modules if isinstance(lora.target_modules, str) else tuple(lora.target_modules)
    return LoraSettings(rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout, target_modules=targets,
                        merge_for_sync=lora.merge_for_sync, save_merged=lora.save_merged)


def reference_kwargs(cfg: Config, model_path: str) -> dict[str, Any]:
    return dict(model_path=model_path, temperature=cfg.rollout.temperature,
                micro_batch_size=cfg.algo.micro_batch_size, threads=torch_threads(cfg, "reference"),
                dtype=cfg.model.train_dtype)


def reward_kwargs(cfg: Config, model_path: str | None) -> dict[str, Any]:
    r = cfg.reward
    return dict(grader=r.grader, model_path=model_path, aggregator=r.aggregator, shape=reward_shape(r),
                batch_size=r.batch_size, max_length=r.max_length, dtype=r.dtype, threads=torch_threads(cfg, "reward"))


def reward_role(cfg: Config, model_path: str | None) -> tuple[type, dict[str, Any]]:
    """(class, keywords) of the reward role: a reward-model grader, or an LLM judge (reward.grader=judge)."""
    if cfg.reward.grader == "judge":
        from promedical.actors.judge_reward import JudgeReward
        from promedical.deploy.judge_role import judge_kwargs
        return JudgeReward, judge_kwargs(cfg, model_path)
    from promedical.actors.reward_model import RewardModel
    return RewardModel, reward_kwargs(cfg, model_path)


def resolve_models(cfg: Config) -> tuple[str, str | None]:
    """(policy path, reward model path or None); builds local models once, fetches nothing."""
    from promedical.actors.models import resolve_model
    from promedical.reward_model.models import resolve_reward_model
    policy = resolve_model(cfg.model.policy)
    if cfg.model.lora.rank:   # a target module the model lacks: one line before any actor starts
        from promedical.actors.lora import target_problem
        from promedical.errors import UserError
        lora = cfg.model.lora
        problem = target_problem(policy, lora.target_modules, lora.merge_for_sync or lora.save_merged)
        if problem:
            raise UserError(problem)
    if cfg.reward.grader == "judge":
        from promedical.deploy.judge_role import judge_model
        return policy, judge_model(cfg)
    reward = None if cfg.reward.grader == "rule" else resolve_reward_model(cfg.reward.model)
    return policy, reward


def _policy_rank_kwargs(cfg: Config, model_path: str, plan):
    """Per-rank Policy arguments: rank, world size and the rendezvous on rank 0's node."""
    from promedical.deploy.placement_ray import bundle_address

    base = policy_kwargs(cfg, model_path)
    ranks = [s for s in plan.slots if s.role == "policy"]
    found: dict[str, tuple[str, int]] = {}

    def kwargs(slot, pgs) -> dict[str, Any]:
        if len(ranks) == 1:
            return base
        if "rank0" not in found:
            found["rank0"] = bundle_address(pgs, ranks[0])
        addr, port = found["rank0"]
        return dict(base, rank=slot.replica, world_size=len(ranks), master_addr=addr, master_port=port)
    return kwargs


def _generator_replica_kwargs(cfg: Config, model_path: str, plan):
    """Per-replica Generator arguments: its index, and on CPU its own slice of its node's cores."""
    import ray

    base = generator_kwargs(cfg, model_path)
    replicas = [s for s in plan.slots if s.role == "generator"]

    def kwargs(slot, pgs) -> dict[str, Any]:
        out = dict(base, replica=slot.replica)
        if cfg.generator.omp_threads_bind == "auto" and len(replicas) > 1:
            nodes = {s.replica: ray.util.placement_group_table(pgs[s.group])["bundles_to_node_id"][s.bundle]
                     for s in replicas}
            here = [r for r, n in sorted(nodes.items()) if n == nodes[slot.replica]]
            out["omp_threads_bind"] = f"share:{here.index(slot.replica)}/{len(here)}"
        return out
    return kwargs


def build_roles(cfg: Config, policy_path: str, reward_path: str | None,
                role_classes: dict[str, type] | None = None):
    """Plan placement, reserve one Ray placement group per bundle group, start each replica in its
    bundle, and wrap each role's replicas in its group handle (actors/groups.py).

    `role_classes` substitutes the class of a role (same constructor keywords), e.g. an instrumented
    subclass in a test.
    """
    from promedical.actors.generator import Generator
    from promedical.actors.lora_reference import BaseReference
    from promedical.actors.groups import GeneratorGroup, PolicyGroup, ReferencePool, RewardPool
    from promedical.actors.policy import Policy
    from promedical.actors.reference import Reference
    from promedical.rollout.loop import Roles
    from promedical.storage.schema import REWARD_FIELDS

    plan = make_plan(cfg.placement, cfg.generator.replicas, plan_roles(cfg))
    classes = {"policy": (Policy, _policy_rank_kwargs(cfg, policy_path, plan)),
               "reference": (Reference, reference_kwargs(cfg, policy_path)),
               "reward": reward_role(cfg, reward_path),
               "generator": (Generator, _generator_replica_kwargs(cfg, policy_path, plan))}
    for role, cls in (role_classes or {}).items():
        classes[role] = (cls, classes[role][1])
    handles, pgs = place_actors(plan, classes, cfg.placement.timeout_s)
    healing = _healing(cfg, plan, classes, pgs)
    timeout = {role: cfg.fault.timeout_s.get(role, DEFAULT_TIMEOUTS_S[role]) for role in DEFAULT_TIMEOUTS_S}
    # overlong=filter: the cut rows' tokens leave the mini-batch token counts too (they were left in, which
    # scaled the kept rows' token-mean loss down by kept / all tokens; tests/test_algo_options.py caught it)
    policy = PolicyGroup(handles["policy"], zero_stage=cfg.trainer.zero_stage, mini_batches=cfg.algo.mini_batches,
                         timeout_s=timeout["policy"], mask_truncated=cfg.rollout.overlong == "filter")
    generators = GeneratorGroup(handles["generator"], timeout_s=timeout["generator"], healing=healing)
    reference = ReferencePool("reference", handles["reference"], ["reference_seconds"],
                              timeout_s=timeout["reference"], healing=healing) if handles["reference"] \
        else BaseReference(handles["policy"], cfg.trainer.zero_stage, timeout_s=timeout["policy"])   # LoRA
    reward = RewardPool("reward", handles["reward"], [f.name for f in REWARD_FIELDS], timeout_s=timeout["reward"],
                        healing=healing)
    return Roles(policy=policy, generators=generators, reference=reference, reward=reward,
                 sync=weight_syncer(cfg, plan, pgs, policy, generators), healing=healing)


def _healing(cfg: Config, plan, classes, pgs):
    """Replacement of dead or hung replicas in their own bundles (fault.heal), or None."""
    from promedical.actors.healing import Healing
    from promedical.deploy.placement_ray import start_actor

    if not cfg.fault.heal:
        return None
    slots = {(s.role, s.replica): s for s in plan.slots}
    return Healing(replace=lambda role, replica: start_actor(slots[(role, replica)], classes[role], pgs),
                   max_restarts=cfg.fault.max_restarts, startup_timeout_s=cfg.fault.startup_timeout_s)


def weight_syncer(cfg: Config, plan, pgs, policy, generators):
    """The weight-sync method `placement.weight_sync` names (auto: by placement, deploy/sync_plan.py), timed out.

    The generator group owns the versions: a replaced generator gets a version from `generators.weights`
    (object store exports) or from `generators.source` (a version the policy keeps, for the others).
    """
    from promedical.actors.sync_collective import Rendezvous
    from promedical.actors.weight_sync import SYNC_METHODS, CollectiveSync, Syncer
    from promedical.deploy.placement_ray import bundle_address
    from promedical.deploy.sync_plan import choose, sync_layout

    method = choose(cfg.placement, cfg.generator.replicas, zero_stage=cfg.trainer.zero_stage,
                    tensor_parallel_size=cfg.generator.tensor_parallel_size, adapters=cfg.model.lora.rank > 0)
    keep = cfg.rollout.max_staleness + 2 if cfg.fault.heal else 0   # versions a replaced generator may need
    if method in ("collective", "nccl"):
        host, port = bundle_address(pgs, next(s for s in plan.slots if s.role == "policy" and s.replica == 0))
        nccl = method == "nccl" or sync_layout(cfg.placement, cfg.generator.replicas).gpus
        spec = Rendezvous(host, port, 1 + len(generators.handles), backend="nccl" if nccl else "gloo",
                          timeout_s=cfg.generator.sync_timeout_s)
        impl = CollectiveSync(policy, generators, spec, bucket_bytes=int(cfg.placement.weight_sync_bucket_mb * 2**20),
                              dtype=policy_kwargs(cfg, "")["export_dtype"], keep_versions=keep, method=method)
    else:
        impl = SYNC_METHODS[method](policy=policy, generators=generators)
        if method == "object_store":   # exports kept for replacing a generator mid-batch
            impl.keep_versions = cfg.rollout.max_staleness + 2
        else:
            impl.keep_versions = keep
    if hasattr(impl, "kept"):
        generators.source = impl.kept
    return Syncer(impl, cfg.generator.sync_timeout_s)
