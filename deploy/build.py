"""Builders: config -> keyword arguments -> actors. The only place that reads the config tree."""
from __future__ import annotations

import os
from typing import Any

from promedical.deploy.config import Config
from promedical.deploy.placement import make_plan, place_actors
from promedical.errors import UserError

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
                enforce_eager=g.enforce_eager)


def policy_kwargs(cfg: Config, model_path: str) -> dict[str, Any]:
    a = cfg.algo
    return dict(model_path=model_path, seed=cfg.run.seed, lr=a.lr, weight_decay=a.weight_decay,
                max_grad_norm=a.max_grad_norm, zero_stage=cfg.trainer.zero_stage, backend=cfg.trainer.backend,
                train_dtype=cfg.model.train_dtype, temperature=cfg.rollout.temperature, clip_eps=a.clip_eps,
                kl_coef=a.kl_coef, kl_estimator=a.kl_estimator, loss_agg=a.loss_agg, tis_cap=cfg.rollout.tis_cap,
                mini_batches=a.mini_batches, micro_batch_size=a.micro_batch_size,
                prompts_per_step=cfg.rollout.prompts_per_step, group_size=cfg.rollout.group_size,
                threads=cfg.trainer.threads,
                export_dtype="bfloat16" if cfg.generator.dtype == "bfloat16" else "float32")


def reference_kwargs(cfg: Config, model_path: str) -> dict[str, Any]:
    return dict(model_path=model_path, temperature=cfg.rollout.temperature,
                micro_batch_size=cfg.algo.micro_batch_size, threads=cfg.trainer.threads,
                dtype=cfg.model.train_dtype)


def reward_kwargs(cfg: Config, model_path: str | None) -> dict[str, Any]:
    r = cfg.reward
    return dict(grader=r.grader, model_path=model_path, aggregator=r.aggregator, alpha=r.alpha, beta=r.beta,
                lam=r.lam, bonus_threshold=r.bonus_threshold, veto_threshold=r.veto_threshold,
                batch_size=r.batch_size, max_length=r.max_length, dtype=r.dtype)


def resolve_models(cfg: Config) -> tuple[str, str | None]:
    """(policy path, reward model path or None); builds local models once, fetches nothing."""
    from promedical.actors.models import resolve_model
    from promedical.reward_model.models import resolve_reward_model
    policy = resolve_model(cfg.model.policy)
    reward = None if cfg.reward.grader == "rule" else resolve_reward_model(cfg.reward.model)
    return policy, reward


# roles the loop drives one replica of; more replicas are planned (`promedical plan`) but not started
SINGLE_REPLICA_ROLES = ("policy", "reference", "reward")


def build_roles(cfg: Config, policy_path: str, reward_path: str | None,
                role_classes: dict[str, type] | None = None):
    """Plan placement, reserve one Ray placement group per bundle group, start each replica in its bundle.

    `role_classes` substitutes the class of a role (same constructor keywords), e.g. an instrumented
    subclass in a test.
    """
    from promedical.actors.generator import Generator
    from promedical.actors.policy import Policy
    from promedical.actors.reference import Reference
    from promedical.actors.reward_model import RewardModel
    from promedical.rollout.loop import Roles

    plan = make_plan(cfg.placement, cfg.generator.replicas)
    for role in SINGLE_REPLICA_ROLES:
        replicas = sum(1 for s in plan.slots if s.role == role)
        if replicas != 1:
            raise UserError(f"placement.roles.{role}.replicas={replicas}: training runs one {role} replica "
                            f"(multi-rank {role} is not built yet); set it to 1 to train, "
                            f"use `promedical plan` to lay out larger clusters")
    classes = {"policy": (Policy, policy_kwargs(cfg, policy_path)),
               "reference": (Reference, reference_kwargs(cfg, policy_path)),
               "reward": (RewardModel, reward_kwargs(cfg, reward_path)),
               "generator": (Generator, generator_kwargs(cfg, policy_path))}
    for role, cls in (role_classes or {}).items():
        classes[role] = (cls, classes[role][1])
    handles, _groups = place_actors(plan, classes, cfg.placement.timeout_s)
    return Roles(policy=handles["policy"][0], reference=handles["reference"][0],
                 reward=handles["reward"][0], generators=handles["generator"])
