"""reward.grader=judge in deploy: checks before any actor starts (the judge named, its template, its endpoint
reachable) and the judge reward role's constructor keywords."""
from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from promedical.errors import UserError

LOCAL_JUDGES = ("tiny", "smollm2")          # model names actors/models.py resolves (or an HF directory)
SCORER_MODELS = ("minilm", "minilm-ecir")   # reward models, not judges: reward.model's default is one
REACH_TIMEOUT_S = 5.0


def judge_problems(cfg: Any) -> list[str]:
    """Value-level problems of the reward.judge_* keys, as 'key=value: reason; fix' lines."""
    from promedical.reward.judge_prompt import load_template

    r, out = cfg.reward, []
    if r.judge_url:
        if not r.judge_url.startswith(("http://", "https://")):
            out.append(f"reward.judge_url={r.judge_url!r}: not an http(s) URL; give the endpoint's base URL, "
                       f"e.g. http://127.0.0.1:8000/v1")
        if not r.model or r.model in SCORER_MODELS:
            out.append(f"reward.model={r.model!r}: with reward.judge_url, reward.model is the model name the "
                       f"endpoint serves; set --set reward.model=NAME (vLLM serve: its --served-model-name)")
    elif not r.model or r.model in SCORER_MODELS:     # another name: resolved (or refused) before actors start
        out.append(f"reward.grader=judge with reward.model={r.model!r}: no judge to run; set reward.model="
                   f"{'|'.join(LOCAL_JUDGES)}|DIR (local vLLM judge replicas) or reward.judge_url=URL (a served judge)")
    try:
        load_template(r.judge_template)
    except ValueError as exc:
        out.append(f"reward.judge_template={r.judge_template!r} {exc}; use v1 or a file with {{instruction}}, "
                   f"{{response}}, {{criterion}} and {{answer}}")
    positive = {"reward.judge_timeout_s": r.judge_timeout_s, "reward.judge_concurrency": r.judge_concurrency,
                "reward.judge_kv_cache_gib": r.judge_kv_cache_gib}
    out += [f"{k}={v} must be > 0" for k, v in positive.items() if not v > 0]
    if r.judge_retries < 0:
        out.append(f"reward.judge_retries={r.judge_retries} must be >= 0 (0 = no retry)")
    if r.judge_max_tokens < 64:
        out.append(f"reward.judge_max_tokens={r.judge_max_tokens}: a judge prompt needs at least 64 tokens")
    if not 0 < r.judge_gpu_memory_utilization < 1:
        out.append(f"reward.judge_gpu_memory_utilization={r.judge_gpu_memory_utilization} must be in (0, 1)")
    if cfg.run.eval_every:
        out.append(f"run.eval_every={cfg.run.eval_every} with reward.grader=judge: in-training eval grades with a "
                   f"reward model; set run.eval_every=0 and run promedical eval --grader judge on the run")
    return out


def check_reachable(url: str) -> None:
    """UserError unless `url` answers HTTP at all (GET {url}/models; any status counts as reachable)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=REACH_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return                              # it answered: the judge calls will show what it thinks of them
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"reward.judge_url={url}: cannot reach the judge ({reason}); start the judge server "
                        f"(README 'LLM judge'), fix the URL, or use local replicas (reward.judge_url='' "
                        f"reward.model=smollm2)") from None


def judge_model(cfg: Any) -> str | None:
    """The local judge's checkpoint directory (built once for tiny/smollm2), or None for an endpoint,
    which must answer now: UserError before any actor starts otherwise."""
    if cfg.reward.judge_url:
        check_reachable(cfg.reward.judge_url)
        return None
    from promedical.actors.models import resolve_model
    try:
        return resolve_model(cfg.reward.model)
    except UserError as exc:
        raise UserError(f"reward.model (the judge): {exc}") from None


def judge_kwargs(cfg: Any, model_path: str | None) -> dict[str, Any]:
    """actors/judge_reward.py JudgeReward keywords: a local judge is engine-sized like a generator."""
    from promedical.deploy.config_schema import reward_shape

    r, g = cfg.reward, cfg.generator
    local = dict(dtype=g.dtype, max_prompt_tokens=r.judge_max_tokens, kv_cache_gib=r.judge_kv_cache_gib,
                 omp_threads_bind=g.omp_threads_bind, gpu_memory_utilization=r.judge_gpu_memory_utilization,
                 seed=cfg.run.seed)
    return dict(model=model_path or r.model, judge_url=r.judge_url, aggregator=r.aggregator, shape=reward_shape(r),
                template=r.judge_template, api_key_env=r.judge_api_key_env, timeout_s=r.judge_timeout_s,
                retries=r.judge_retries, concurrency=r.judge_concurrency, local=None if r.judge_url else local)
