"""The run configuration: its presets in configs/, strict loading with `--set` overrides, whole-config validation.

The schema, one typed dataclass per section, is deploy/config_schema.py; every name of it is re-exported
here, so callers import the configuration from this module alone.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from promedical.deploy.config_schema import (DEFAULT_TIMEOUTS_S, AlgoConfig, Config, DataConfig, FaultConfig,
                                             GeneratorConfig, LoraConfig, ModelConfig, PlacementConfig,
                                             RewardConfig, RoleResources, RolloutConfig, RunConfig, TrainerConfig,
                                             reward_shape)
from promedical.deploy.strict import from_dict, set_path, to_dict
from promedical.errors import UserError
from promedical.runtime.threads import node_cores

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def _positive(cfg: Config) -> list[str]:
    checks = {
        "rollout.steps": cfg.rollout.steps, "rollout.prompts_per_step": cfg.rollout.prompts_per_step,
        "rollout.group_size": cfg.rollout.group_size, "rollout.max_new_tokens": cfg.rollout.max_new_tokens,
        "algo.lr": cfg.algo.lr, "algo.mini_batches": cfg.algo.mini_batches,
        "algo.micro_batch_size": cfg.algo.micro_batch_size, "reward.batch_size": cfg.reward.batch_size,
        "generator.replicas": cfg.generator.replicas, "generator.sync_timeout_s": cfg.generator.sync_timeout_s,
        "rollout.temperature": cfg.rollout.temperature, "rollout.tis_cap": cfg.rollout.tis_cap,
    }
    return [f"{k}={v} must be > 0" for k, v in checks.items() if not v > 0]


def _scale_problems(cfg: Config) -> list[str]:
    """Model shapes, tensor parallelism and ZeRO-3 weight export (see deploy/memory_plan.py, README)."""
    from promedical.deploy.memory_plan import KNOWN_SHAPES
    from promedical.deploy.placement import role_resources

    out = [f"{key}={value!r} is unknown; choose auto or one of {sorted(KNOWN_SHAPES)}"
           for key, value in (("model.shape", cfg.model.shape), ("reward.model_shape", cfg.reward.model_shape))
           if value != "auto" and value not in KNOWN_SHAPES]
    tp, gpus = cfg.generator.tensor_parallel_size, role_resources(cfg.placement, "generator").num_gpus
    if tp < 1:
        out.append(f"generator.tensor_parallel_size={tp} must be >= 1")
    elif tp > max(1, int(gpus)):
        out.append(f"generator.tensor_parallel_size={tp} needs {tp} GPUs per generator replica but "
                   f"placement.roles.generator.num_gpus={gpus:g}; set num_gpus={tp} or tensor_parallel_size=1")
    return out


LORA_SYNC_METHODS = ("auto", "object_store")   # the methods that carry an adapter (or merged weights)


def lora_problems(cfg: Config) -> list[str]:
    """Problems of model.lora.* (a target module the model lacks is checked once the model is resolved)."""
    lora, out = cfg.model.lora, []
    if lora.rank < 0:
        out.append(f"model.lora.rank={lora.rank}: must be >= 0 (0 = off, e.g. 8, 16 or 64 for LoRA)")
    if not lora.rank:
        return out
    if not lora.alpha > 0:
        out.append(f"model.lora.alpha={lora.alpha}: must be > 0 (adapters are scaled by alpha / rank; e.g. 16)")
    if not 0 <= lora.dropout < 1:
        out.append(f"model.lora.dropout={lora.dropout}: must be in [0, 1)")
    if lora.lr is not None and not lora.lr > 0:
        out.append(f"model.lora.lr={lora.lr}: must be > 0, or leave it unset for 10 x algo.lr")
    targets = [lora.target_modules] if isinstance(lora.target_modules, str) else lora.target_modules
    if not targets or any(not t for t in targets):
        out.append("model.lora.target_modules: give all-linear or a list of module names, e.g. [q_proj, v_proj]")
    if cfg.placement.weight_sync not in LORA_SYNC_METHODS:
        out.append(f"placement.weight_sync={cfg.placement.weight_sync} cannot move LoRA adapters (it sends the "
                   f"policy's own tensors); use placement.weight_sync=object_store or auto with model.lora.rank > 0")
    return out


def plan_roles(cfg: Config) -> tuple[str, ...]:
    """The roles a run starts: all four, or with LoRA no reference (the policy's base is the reference)."""
    from promedical.deploy.placement import ROLES
    return tuple(r for r in ROLES if not (r == "reference" and cfg.model.lora.rank > 0))


def lora_lr(cfg: Config) -> float:
    """The policy's learning rate: algo.lr, or with LoRA model.lora.lr (unset: 10 x algo.lr)."""
    lora = cfg.model.lora
    if not lora.rank:
        return cfg.algo.lr
    return lora.lr if lora.lr is not None else 10.0 * cfg.algo.lr


def clip_bounds(algo: AlgoConfig) -> tuple[float, float]:
    """(low, high) clip epsilons: the asymmetric keys where set, else the symmetric clip_eps."""
    low = algo.clip_eps if algo.clip_eps_low is None else algo.clip_eps_low
    return low, algo.clip_eps if algo.clip_eps_high is None else algo.clip_eps_high


def algo_problems(cfg: Config) -> list[str]:
    """Problems of the GRPO-variant keys (clipping, schedule, dynamic sampling, overlong handling)."""
    a, r, out = cfg.algo, cfg.rollout, []
    low, high = clip_bounds(a)
    if a.clip_eps_low is not None and not 0 < a.clip_eps_low < 1:
        out.append(f"algo.clip_eps_low={a.clip_eps_low}: must be in (0, 1) so the ratio floor 1 - low stays > 0")
    if a.clip_eps_high is not None and not a.clip_eps_high > 0:
        out.append(f"algo.clip_eps_high={a.clip_eps_high}: must be > 0")
    if low > high:
        out.append(f"algo.clip_eps_low={low} > algo.clip_eps_high={high}: clip-higher needs low <= high; "
                   f"raise algo.clip_eps_high or lower algo.clip_eps_low")
    if a.dual_clip is not None and not a.dual_clip > 1:
        out.append(f"algo.dual_clip={a.dual_clip}: must be > 1 (a ratio cap for negative advantages, e.g. 3.0); "
                   f"or leave it unset")
    if a.warmup_steps < 0:
        out.append(f"algo.warmup_steps={a.warmup_steps}: must be >= 0 (training steps of warmup); set 0 for none")
    if r.max_sampling_rounds < 1:
        out.append(f"rollout.max_sampling_rounds={r.max_sampling_rounds}: must be >= 1 (the first round counts)")
    if r.overlong == "soft" and not 0 < r.overlong_buffer <= r.max_new_tokens:
        out.append(f"rollout.overlong_buffer={r.overlong_buffer}: rollout.overlong=soft needs 0 < overlong_buffer "
                   f"<= rollout.max_new_tokens={r.max_new_tokens}")
    if r.overlong == "soft" and cfg.reward.aggregator == "lexicographic":
        out.append("rollout.overlong=soft with reward.aggregator=lexicographic: the length penalty would move "
                   "responses across its violation ranks (a safe one below a vetoed one); use rollout.overlong=filter, "
                   "or reward.aggregator=promedical (its penalty stays inside the veto bands)")
    return out


def _fault_problems(fault: FaultConfig) -> list[str]:
    roles = ("policy", "reference", "reward", "generator")
    out = [f"fault.timeout_s.{k}: unknown role; use one of {', '.join(roles)}" for k in fault.timeout_s if k not in roles]
    out += [f"fault.timeout_s.{k}={v} must be > 0 (seconds)" for k, v in fault.timeout_s.items() if not v > 0]
    if not fault.startup_timeout_s > 0:
        out.append(f"fault.startup_timeout_s={fault.startup_timeout_s} must be > 0 (seconds)")
    if fault.max_restarts < 0 or fault.resume_attempts < 0:
        out.append("fault.max_restarts and fault.resume_attempts must be >= 0 (0 = never)")
    return out


def _ranks(cfg: Config) -> int:
    return (cfg.placement.roles.get("policy") or RoleResources()).replicas


def problems(cfg: Config) -> list[str]:
    """Every value-level problem of a loaded config, as 'key=value: reason'."""
    from promedical.actors.schedules import LR_SCHEDULES
    from promedical.reward.aggregate import REWARD_AGGREGATORS
    from promedical.reward_model.graders import GRADERS
    from promedical.rollout.registry import ADVANTAGES, KL_ESTIMATORS, LOSS_AGGREGATIONS
    from promedical.deploy.placement import STRATEGIES, placement_problems
    from promedical.deploy.sync_plan import weight_sync_problems

    out = _positive(cfg) + _fault_problems(cfg.fault)
    if cfg.rollout.group_size < 2 and cfg.rollout.dynamic_sampling:
        out.append(f"rollout.dynamic_sampling=true needs rollout.group_size >= 2 (got {cfg.rollout.group_size}): "
                   f"a one-sample group is always constant and would be dropped; raise group_size or turn it off")
    elif cfg.rollout.group_size < 2:
        out.append(f"rollout.group_size={cfg.rollout.group_size}: GRPO needs at least 2 samples per group")
    out += algo_problems(cfg)
    if cfg.run.keep_checkpoints < 1 or cfg.run.checkpoint_every < 0:
        out.append("run.keep_checkpoints must be >= 1 and run.checkpoint_every >= 0 (0 = no checkpoints)")
    if cfg.trainer.threads < 0 or (not cfg.run.address and cfg.trainer.threads > node_cores()):
        out.append(f"trainer.threads={cfg.trainer.threads}: must be between 0 (by placement) and this machine's "
                   f"{node_cores()} cores; set trainer.threads=0 or at most {node_cores()}")
    if cfg.rollout.max_staleness < 0:
        out.append(f"rollout.max_staleness={cfg.rollout.max_staleness} must be >= 0")
    if cfg.run.max_bad_steps < 1:
        out.append(f"run.max_bad_steps={cfg.run.max_bad_steps}: must be >= 1 (bad steps in a row before the run stops)")
    if cfg.rollout.top_p != 1:
        # vLLM's sampled logprobs are taken after top-p, the policy's over the full softmax: the ratio and
        # the IS weights would compare different distributions (biased even on-policy)
        out.append(f"rollout.top_p={cfg.rollout.top_p}: top-p sampling is not supported (the policy's logprobs "
                   f"are over the full softmax, so the IS weights would be biased); set rollout.top_p=1.0 and "
                   f"use rollout.temperature to sharpen sampling")
    if cfg.algo.kl_coef < 0 or cfg.algo.clip_eps <= 0:
        out.append("algo.kl_coef must be >= 0 and algo.clip_eps > 0")
    if cfg.rollout.prompts_per_step % cfg.algo.mini_batches:
        out.append(f"algo.mini_batches={cfg.algo.mini_batches} must divide rollout.prompts_per_step="
                   f"{cfg.rollout.prompts_per_step} (a mini-batch holds whole GRPO groups)")
    elif (cfg.rollout.prompts_per_step // cfg.algo.mini_batches) % _ranks(cfg):
        ranks = _ranks(cfg)
        out.append(f"placement.roles.policy.replicas={ranks} must divide the groups per mini-batch "
                   f"(rollout.prompts_per_step / algo.mini_batches = "
                   f"{cfg.rollout.prompts_per_step // cfg.algo.mini_batches}): each policy rank trains on an "
                   f"equal share of whole GRPO groups; change one of the three")
    registries = [("algo.advantage", cfg.algo.advantage, ADVANTAGES),
                  ("algo.kl_estimator", cfg.algo.kl_estimator, KL_ESTIMATORS),
                  ("algo.loss_agg", cfg.algo.loss_agg, LOSS_AGGREGATIONS),
                  ("algo.lr_schedule", cfg.algo.lr_schedule, LR_SCHEDULES),
                  ("reward.aggregator", cfg.reward.aggregator, REWARD_AGGREGATORS),
                  ("reward.grader", cfg.reward.grader, GRADERS),
                  ("placement.strategy", cfg.placement.strategy, STRATEGIES)]
    for key, value, registry in registries:
        if value not in registry:
            out.append(f"{key}={value!r} is unknown; choose one of {sorted(registry)}")
    out += [f"reward.{p}" for p in reward_shape(cfg.reward).problems()]
    if cfg.reward.grader == "judge":
        from promedical.deploy.judge_role import judge_problems
        out += judge_problems(cfg)
    if cfg.run.eval_every < 0 or (cfg.run.eval_every and not cfg.run.eval_prompts):
        out.append(f"run.eval_every={cfg.run.eval_every}: must be >= 0, and > 0 needs run.eval_prompts "
                   f"(a held-out rubric file)")
    from promedical.observe.sinks import SINKS
    out += [f"run.sinks: {s!r} is unknown; choose from {sorted(SINKS)}" for s in cfg.run.sinks if s not in SINKS]
    out += _scale_problems(cfg) + lora_problems(cfg)
    out += weight_sync_problems(cfg.placement, cfg.generator.replicas, zero_stage=cfg.trainer.zero_stage,
                                tensor_parallel_size=cfg.generator.tensor_parallel_size)
    return out + placement_problems(cfg.placement, cfg.generator.replicas, plan_roles(cfg))


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _read_yaml(path: Path, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: cannot read config ({exc}); check the path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{where}{line}: invalid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: a config file must be a mapping of sections")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value, e.g. --set rollout.steps=10")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(name_or_path: str = "demo", overrides: list[str] | None = None) -> Config:
    """Load a preset name or a YAML file, apply `key=value` overrides, and validate every value."""
    path = Path(name_or_path)
    if name_or_path in preset_names():
        path, where = CONFIG_DIR / f"{name_or_path}.yaml", f"preset {name_or_path!r}"
    elif path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not path.is_file():
            raise UserError(f"config file {name_or_path} not found; give an existing YAML file "
                            f"or a preset: {', '.join(preset_names())}")
        where = str(path)
    else:
        raise UserError(f"unknown preset {name_or_path!r}; choose one of {', '.join(preset_names())} "
                        f"or give a YAML file path")
    data = _read_yaml(path, where)
    data.setdefault("preset", path.stem)
    for item in overrides or []:
        key, value = parse_override(item)
        set_path(data, key, value)
    if overrides:
        where = f"{where} with --set overrides"
    cfg = from_dict(Config, data, where=where)
    if cfg.model.lora.rank > 0:   # a LoRA run's own resources (it has no reference role)
        cfg.placement.roles = {**cfg.placement.roles, **cfg.placement.lora_roles}
    found = problems(cfg)
    if found:
        raise UserError(f"{where}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
