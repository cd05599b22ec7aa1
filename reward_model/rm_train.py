"""Reward-model training with the per-criterion Bradley-Terry loss (Explicit Criteria Injection).

Each pairwise preference (x, c, y_w, y_l) is one instance; the model reads x, y and c in one of the
layouts of reward_model/scorers.py (an encoder: the text pair (criterion + instruction, response); a decoder:
instruction, response, criterion last) and outputs one scalar r.
Loss = -log sigmoid(r(y_w|x,c) - r(y_l|x,c)). `use_criterion=False` is the criterion-agnostic
baseline: the same instances with the criterion replaced by a fixed placeholder. Any Hugging Face
backbone works through AutoModelForSequenceClassification(num_labels=1); the result is saved in HF
format with promedical_calibration.json (reward_model/calibration.py, plus the layout) beside it.

Engines: plain torch in one process, or DeepSpeed (`deepspeed_stage` 0-3) in one process or many:
under `torchrun --nproc_per_node N` each rank takes its share of every batch of pairs and ZeRO
partitions the optimizer state, gradients (and with stage 3 the weights); rank 0 writes the model.
"""
from __future__ import annotations

import json
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from promedical.reward_model.calibration import fit_calibration
from promedical.reward.injection import instruction_text
from promedical.reward.rubric import RubricRecord, Tier
from promedical.reward.splits import calibration_split

if TYPE_CHECKING:
    from promedical.reward_model.scorers import Scorer

CALIBRATION_FILE = "promedical_calibration.json"


class TrainSetupError(ValueError):
    """The backbone cannot be trained as asked (layout, fusion depth, rank split); raised before any step."""


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
    anchor_weight: float = 0.0      # pointwise anchor term of the loss (pair_loss); 0 = Bradley-Terry only
    calibration_split: float = 0.0  # fraction of training records (by prompt) kept out of the gradient steps
                                    # and used only to fit the calibration (0 = calibrate on training records)
    threads: int = 0
    layout: str = "auto"            # auto | pair | prefix (reward_model/scorers.py)
    fusion_layers: int = 0          # prefix layout: top layers where the criterion sees the response (0 = all)
    deepspeed_stage: int = -1       # -1 = plain torch; 0-3 = DeepSpeed ZeRO stage
    dtype: str = "float32"          # float32 | bfloat16 (DeepSpeed bf16 training)
    grad_checkpointing: bool = False
    autocast_bf16: bool = False     # plain torch: forward passes under bf16 autocast, fp32 weights and optimiser
                                    # (CPUs with avx512_bf16 / AMX and GPUs: faster steps); calibration in fp32


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


def load_scorer(path: str):
    """(tokenizer, scalar-head model) for any HF backbone; decoders get a pad token. The load report
    (the new head is always "missing" from a backbone) is silenced."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
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


def score_points(scorer: Scorer, points: list[PointInstance], use_criterion: bool) -> np.ndarray:
    return scorer.score_batched([(p.instruction, p.response, p.criterion if use_criterion else None) for p in points])


def _scores(scorer: Scorer, batch: list[PairInstance], use_criterion: bool):
    """(winner scores, loser scores) of a batch of pairs, one forward pass."""
    crit = [b.criterion if use_criterion else None for b in batch]
    scores = scorer.train_scores([(b.instruction, b.winner, c) for b, c in zip(batch, crit)]
                                 + [(b.instruction, b.loser, c) for b, c in zip(batch, crit)])
    return scores[:len(batch)], scores[len(batch):]


def pair_loss(winner, loser, anchor_weight: float):
    """Bradley-Terry -log sigmoid(r_w - r_l), plus anchor_weight * (softplus(-r_w) + softplus(r_l)).

    The anchor term uses what every shipped pair also says pointwise: its winner meets the criterion (or,
    for a veto criterion, does not violate it) and its loser does not (violates it). It pins "good" above
    0 and "bad" below 0 for every prompt and criterion, so one threshold separates them across prompts,
    which pointwise decisions (the veto) need and the pairwise loss alone does not give.
    """
    import torch.nn.functional as F

    loss = -F.logsigmoid(winner - loser).mean()
    if anchor_weight:
        loss = loss + anchor_weight * (F.softplus(-winner) + F.softplus(loser)).mean()
    return loss


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


def _prepare(backbone: str, cfg: TrainConfig):
    """(tokenizer, model, layout): the backbone loaded, checked against the config (TrainSetupError
    before any training), frozen and without dropout as asked."""
    import torch

    from promedical.reward_model.prefix_scoring import check_fusion
    from promedical.reward_model.scorers import resolve_layout

    tokenizer, model = load_scorer(backbone)
    try:
        layout = resolve_layout(model, cfg.layout)
        if layout == "prefix":
            check_fusion(model, cfg.fusion_layers)
        if cfg.grad_checkpointing and layout == "prefix" and cfg.fusion_layers not in (0, model.config.num_hidden_layers):
            raise ValueError("grad_checkpointing needs fusion_layers 0 (all): the partial-fusion path uses KV caches")
    except ValueError as err:
        raise TrainSetupError(str(err)) from None
    if cfg.grad_checkpointing:
        model.gradient_checkpointing_enable()
    freeze_lower(model, cfg.freeze_layers)
    if not cfg.dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return tokenizer, model, layout


def train_reward_model(backbone: str, train: list[RubricRecord], out_dir: str | Path, cfg: TrainConfig,
                       log=print, on_step=None) -> dict:
    """Train, calibrate and save; returns a summary (steps, losses, seconds, calibration).

    `on_step(step, steps)` is called after every optimiser step (e.g. a progress bar)."""
    import torch

    from promedical.reward_model.rm_engines import make_engine
    from promedical.reward_model.scorers import make_scorer
    from promedical.runtime.devices import autocast

    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    train, calibration = calibration_split(train, cfg.calibration_split, cfg.seed)
    instances = pair_instances(train)
    rng.shuffle(instances)
    if cfg.max_pairs:
        instances = instances[:cfg.max_pairs]
    tokenizer, model, layout = _prepare(backbone, cfg)
    steps = max(1, int(len(instances) * cfg.epochs / cfg.batch_size))
    try:
        engine = make_engine(model, cfg.lr, steps, deepspeed_stage=cfg.deepspeed_stage, batch_size=cfg.batch_size,
                             bf16=cfg.dtype == "bfloat16")
    except ValueError as err:
        raise TrainSetupError(str(err)) from None
    say = log if engine.rank == 0 else (lambda message: None)
    scorer = make_scorer(tokenizer, engine.model, layout, max_length=cfg.max_length, fusion_layers=cfg.fusion_layers)
    start, losses = time.perf_counter(), []
    engine.model.train()
    for step in range(steps):
        k = (step * cfg.batch_size) % len(instances)
        batch = (instances + instances)[k:k + cfg.batch_size][engine.rank::engine.world]
        with autocast(next(engine.model.parameters()).device, cfg.autocast_bf16):
            winner, loser = _scores(scorer, batch, cfg.use_criterion)
        margin = winner - loser
        loss = pair_loss(winner, loser, cfg.anchor_weight)
        engine.backward(loss)
        engine.step()
        losses.append(float(loss.detach()))
        if on_step is not None and engine.rank == 0:
            on_step(step + 1, steps)
        if step % 20 == 0 or step == steps - 1:
            say(f"step {step + 1}/{steps} loss {np.mean(losses[-20:]):.4f} "
                f"batch acc {float((margin.detach() > 0).float().mean()):.2f}")
    engine.model.eval()
    points = point_instances(calibration)
    rng.shuffle(points)
    points = points[:cfg.calibration_points]
    scores = score_points(scorer, points, cfg.use_criterion)      # every rank: ZeRO-3 forwards are collective
    calib = fit_calibration(scores, np.array([p.label for p in points]),
                            np.array([p.tier is Tier.VETO for p in points]), cfg.use_criterion)
    meta = calib.to_json() | {"max_length": cfg.max_length, "backbone": str(backbone), "layout": layout}
    if layout == "prefix":
        meta |= {"fusion_layers": cfg.fusion_layers, "segment_limits": asdict(scorer.tokens.limits)}
    with engine.full_weights():
        if engine.rank == 0:
            save_checkpoint(engine.model, tokenizer, meta, Path(out_dir))
    engine.barrier()
    return {"pairs": len(instances), "calibration_records": len(calibration), "steps": steps, "first_loss": losses[0], "last_loss": losses[-1],
            "final_loss": float(np.mean(losses[-20:])), "seconds": time.perf_counter() - start,
            "calibration": calib.to_json(), "layout": layout, "rank": engine.rank, "ranks": engine.world}
