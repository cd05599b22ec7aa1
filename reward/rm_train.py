"""Reward-model training with the per-criterion Bradley-Terry loss (Explicit Criteria Injection).

Each pairwise preference (x, c, y_w, y_l) is one instance; the model reads the injected text pair
(criterion + instruction, response) and outputs one scalar r. Loss = -log sigmoid(r(y_w|x,c) - r(y_l|x,c)).
`use_criterion=False` is the criterion-agnostic baseline: the same instances with the criterion
replaced by a fixed placeholder. Any Hugging Face backbone works through
AutoModelForSequenceClassification(num_labels=1); the result is saved in HF format with
promedical_calibration.json (reward/calibration.py) beside it.
"""
from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promedical.reward.calibration import fit_calibration
from promedical.reward.injection import inject, instruction_text
from promedical.reward.rubric import RubricRecord, Tier

CALIBRATION_FILE = "promedical_calibration.json"


@dataclass(frozen=True)
class PairInstance:
    instruction: str
    criterion: str
    tier: Tier
    winner: str
    loser: str


@dataclass(frozen=True)
class PointInstance:
    instruction: str
    criterion: str
    tier: Tier
    response: str
    label: bool          # True = met (proficiency, bonus) / violation present (veto)


@dataclass(frozen=True)
class TrainConfig:
    use_criterion: bool = True
    epochs: float = 1.0
    lr: float = 5e-5
    batch_size: int = 16            # pairs per optimiser step
    max_length: int = 192
    freeze_layers: int = 0          # freeze embeddings + the lowest N transformer layers (CPU speed)
    dropout: bool = False           # True keeps the backbone's dropout; off by default because the BT
                                    # margin of two near-identical responses is small and noise swamps it
    seed: int = 0
    max_pairs: int = 0              # 0 = all
    calibration_points: int = 800   # labelled triples scored to fit the calibration
    threads: int = 0


def pair_instances(records: list[RubricRecord]) -> list[PairInstance]:
    out = []
    for r in records:
        crit = {c.id: c for c in r.criteria}
        instruction = instruction_text(r)
        for p in r.pairs:
            c = crit[p.criterion_id]
            out.append(PairInstance(instruction, c.text, c.tier, r.responses[p.winner].text, r.responses[p.loser].text))
    return out


def point_instances(records: list[RubricRecord]) -> list[PointInstance]:
    out = []
    for r in records:
        crit = {c.id: c for c in r.criteria}
        instruction = instruction_text(r)
        for resp in r.responses:
            for cid, met in sorted(resp.labels.items()):
                c = crit[cid]
                out.append(PointInstance(instruction, c.text, c.tier, resp.text, met))
    return out


def encode(tokenizer, pairs: list[tuple[str, str]], max_length: int):
    """Tokenised text pairs; the longer side is cut first so the criterion at the front survives."""
    return tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation="longest_first",
                     max_length=max_length, return_tensors="pt")


def load_scorer(path: str):
    """(tokenizer, scalar-head model) for any HF backbone; decoders get a pad token."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def freeze_lower(model, n_layers: int) -> int:
    """Freeze embeddings and transformer layers 0..n_layers-1 (BERT `layer.N`, Llama/Qwen `layers.N`)."""
    if n_layers <= 0:
        return 0
    frozen = 0
    for name, param in model.named_parameters():
        match = re.search(r"\.layers?\.(\d+)\.", name)
        if "embeddings" in name or "embed_tokens" in name or (match and int(match.group(1)) < n_layers):
            param.requires_grad = False
            frozen += param.numel()
    return frozen


def score_points(model, tokenizer, points: list[PointInstance], use_criterion: bool, max_length: int,
                 batch_size: int = 64) -> np.ndarray:
    import torch

    pairs = [inject(p.instruction, p.response, p.criterion if use_criterion else None) for p in points]
    out = []
    model.eval()
    with torch.no_grad():
        for k in range(0, len(pairs), batch_size):
            out.append(model(**encode(tokenizer, pairs[k:k + batch_size], max_length)).logits[:, 0].float().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _step(model, tokenizer, batch: list[PairInstance], cfg: TrainConfig):
    import torch.nn.functional as F

    crit = [b.criterion if cfg.use_criterion else None for b in batch]
    wins = [inject(b.instruction, b.winner, c) for b, c in zip(batch, crit)]
    loses = [inject(b.instruction, b.loser, c) for b, c in zip(batch, crit)]
    logits = model(**encode(tokenizer, wins + loses, cfg.max_length)).logits[:, 0]
    margin = logits[:len(batch)] - logits[len(batch):]
    loss = -F.logsigmoid(margin).mean()
    loss.backward()
    return float(loss.detach()), float((margin.detach() > 0).float().mean())


def save_checkpoint(model, tokenizer, meta: dict, out_dir: Path) -> None:
    """HF weights, tokenizer and calibration, written to `<out>.partial` and renamed into place."""
    import os
    import shutil

    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / CALIBRATION_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, out_dir)       # out_dir must be absent or empty (checked by the CLI)


def train_reward_model(backbone: str, train: list[RubricRecord], out_dir: str | Path, cfg: TrainConfig,
                       log=print) -> dict:
    """Train, calibrate and save; returns a summary (steps, final loss, seconds, calibration)."""
    import torch

    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    instances = pair_instances(train)
    rng.shuffle(instances)
    if cfg.max_pairs:
        instances = instances[:cfg.max_pairs]
    tokenizer, model = load_scorer(backbone)
    freeze_lower(model, cfg.freeze_layers)
    if not cfg.dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    steps = max(1, int(len(instances) * cfg.epochs / cfg.batch_size))
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                              * max(0.0, 1 - s / steps))
    start, losses = time.perf_counter(), []
    model.train()
    for step in range(steps):
        k = (step * cfg.batch_size) % len(instances)
        batch = (instances + instances)[k:k + cfg.batch_size]
        loss, acc = _step(model, tokenizer, batch, cfg)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad()
        losses.append(loss)
        if step % 20 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps} loss {np.mean(losses[-20:]):.4f} batch acc {acc:.2f}")
    points = point_instances(train)
    rng.shuffle(points)
    points = points[:cfg.calibration_points]
    scores = score_points(model, tokenizer, points, cfg.use_criterion, cfg.max_length)
    calib = fit_calibration(scores, np.array([p.label for p in points]),
                            np.array([p.tier is Tier.VETO for p in points]), cfg.use_criterion)
    meta = calib.to_json() | {"max_length": cfg.max_length, "backbone": str(backbone)}
    save_checkpoint(model, tokenizer, meta, Path(out_dir))
    return {"pairs": len(instances), "steps": steps, "first_loss": losses[0], "last_loss": losses[-1], "final_loss": float(np.mean(losses[-20:])),
            "seconds": time.perf_counter() - start, "calibration": calib.to_json()}
