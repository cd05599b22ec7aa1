"""TRL GRPOTrainer on the reference workload, for a side-by-side step time (needs `pip install trl`).

Usage: python benchmarks/trl_baseline.py MODEL_DIR STEPS OUT_JSON
Same model, 8 prompts x 8 samples, up to 64 new tokens, one optimizer update per step. Its reward is a
cheap length rule (no reward model), which favours TRL in the comparison.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

PROMPTS = Path(__file__).resolve().parent.parent / "data" / "medical.jsonl"
MAX_PROMPT_TOKENS = 256   # model.max_prompt_tokens of the demo preset


def main() -> None:
    model_dir, steps, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from transformers import AutoTokenizer

    # the same prompts as the demo, chat template applied and cut to the demo's last 256 prompt tokens
    # (TRL has no prompt-length cap, and the longest HealthBench conversations run to thousands)
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = [json.loads(line) for line in PROMPTS.read_text().splitlines()[:8]]
    prompts = []
    for r in rows:
        text = tok.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=False)
        prompts.append(tok.decode(tok.encode(text, add_special_tokens=False)[-MAX_PROMPT_TOKENS:]))
    data = Dataset.from_list([{"prompt": p} for p in prompts] * steps)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.start)

    config = GRPOConfig(output_dir=str(out.parent / "trl-out"), per_device_train_batch_size=64,
                        num_generations=8, max_completion_length=64, max_steps=steps, learning_rate=1e-6,
                        beta=0.04, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                        bf16=False, gradient_accumulation_steps=1, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model_dir, reward_funcs=lambda completions, **kw: [
        float(len(str(c))) / 100 for c in completions], args=config, train_dataset=data,
        callbacks=[Timer()])
    trainer.train()
    out.write_text(json.dumps({"step_seconds": times}))


if __name__ == "__main__":
    main()
