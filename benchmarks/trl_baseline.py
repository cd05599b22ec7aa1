"""TRL GRPOTrainer on the demo workload, for a side-by-side step time (needs `pip install .[bench]`: trl, datasets).

Usage: python benchmarks/trl_baseline.py MODEL_DIR STEPS OUT_JSON [--dtype auto|float32|bfloat16] [--reward demo|length]
                                       [--set KEY=VALUE ...]

What it shares with `promedical train --config demo`: the model; the prompts, step by step (the demo's
prompt queue: data.prompts shuffled with run.seed, 8 a step), chat template applied and cut to their last
model.max_prompt_tokens tokens; 8 samples per prompt, up to 64 new tokens, temperature 1, one optimizer
update per step, lr and KL coefficient; the dtype (`auto` resolves as the demo's: bf16 on a CPU with
native bf16, else fp32; TRL runs it as bf16 autocast over fp32 weights, as DeepSpeed's bf16 keeps fp32
master weights); and, with `--reward demo` (default), the reward: the demo's reward role (reward.grader,
reward.model: minilm-ecir) grading every (response, criterion) pair of the prompt's rubric, rolled up by
the same aggregator, in TRL's process. `--set` takes the demo's config overrides, as
`promedical train --config demo --set ...` would (e.g. reward.grader=similarity reward.model=minilm).
What differs: TRL generates with Hugging Face generate (ours with vLLM), in one process (ours in Ray
actors), and its loss is its own default (loss_type dapo). `--reward length` is a free length rule (no
reward model), the old baseline.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def demo_prompts(steps: int, sets: list[str]):
    """[(prompt_id, messages)] of the demo's first `steps` steps, in order, and the rubric records by id."""
    from promedical.deploy.config import load_config
    from promedical.deploy.run import load_prompts
    from promedical.rollout.prompts import PromptSource

    cfg = load_config("demo", sets)
    source = PromptSource(load_prompts(cfg), seed=cfg.run.seed, shuffle=cfg.data.shuffle)
    batches = [source.next_batch(cfg.rollout.prompts_per_step) for _ in range(steps)]
    return cfg, [r for batch in batches for _, r in batch]


def demo_reward(cfg):
    """A TRL reward function: the demo's reward role (its grader and aggregator) called in-process."""
    import pyarrow as pa

    from promedical.actors.reward_model import RewardModel
    from promedical.deploy.config import reward_shape
    from promedical.reward_model.models import resolve_reward_model
    from promedical.runtime.dtypes import cpu_flags, resolve_dtype

    r = cfg.reward
    path = None if r.grader == "rule" else resolve_reward_model(r.model)
    model = RewardModel(grader=r.grader, model_path=path, aggregator=r.aggregator,
                        shape=reward_shape(r), batch_size=r.batch_size, max_length=r.max_length,
                        dtype=resolve_dtype(r.dtype, "cpu", cpu_flags()).dtype)
    rubrics: dict = {}

    def reward(completions, prompt_id, **_):
        texts = [str(c) for c in completions]
        batch = pa.RecordBatch.from_pydict({"prompt_id": list(prompt_id), "response_text": texts,
                                            "group_id": [0] * len(texts)})
        return [float(x) for x in model.score(batch, rubrics).column("reward").to_pylist()]
    return reward, rubrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("steps", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--reward", default="demo", choices=["demo", "length"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="demo config override")
    args = parser.parse_args()

    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from promedical.runtime.dtypes import cpu_flags, resolve_dtype

    cfg, records = demo_prompts(args.steps, args.set)
    tok = AutoTokenizer.from_pretrained(args.model_dir)
    rows = []
    for rec in records:
        messages = [{"role": m.role, "content": m.content} for m in rec.messages]
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        cut = tok.decode(tok.encode(text, add_special_tokens=False)[-cfg.model.max_prompt_tokens:])
        rows.append({"prompt": cut, "prompt_id": rec.prompt_id})
    dtype = resolve_dtype(args.dtype, "cpu", cpu_flags())
    if args.reward == "demo":
        reward, rubrics = demo_reward(cfg)
        rubrics.update({rec.prompt_id: rec for rec in records})
    else:
        reward = lambda completions, **_: [float(len(str(c))) / 100 for c in completions]  # noqa: E731
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.start)

    n, g = cfg.rollout.prompts_per_step, cfg.rollout.group_size
    config = GRPOConfig(output_dir=str(args.out.parent / "trl-out"), per_device_train_batch_size=n * g,
                        num_generations=g, max_completion_length=cfg.rollout.max_new_tokens, max_steps=args.steps,
                        learning_rate=cfg.algo.lr, beta=cfg.algo.kl_coef, temperature=cfg.rollout.temperature,
                        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                        bf16=dtype.dtype == "bfloat16", gradient_accumulation_steps=1, dataloader_num_workers=0,
                        shuffle_dataset=False, seed=cfg.run.seed)
    trainer = GRPOTrainer(model=args.model_dir, reward_funcs=reward, args=config, train_dataset=Dataset.from_list(rows),
                          callbacks=[Timer()])
    trainer.train()
    args.out.write_text(json.dumps({"step_seconds": times, "dtype": dtype.dtype, "dtype_reason": dtype.reason,
                                    "reward": args.reward, "sets": args.set,
                                    "prompts": [r["prompt_id"] for r in rows]}))


if __name__ == "__main__":
    main()
