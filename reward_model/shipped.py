"""The trained part of a shipped reward model, kept in the repository so first use assembles it in seconds.

Building minilm-ecir trains for minutes on first use (reward_model/ecir.py). data/shipped/ holds, per
model name and build cache key (recipe and training pairs, ecir.ecir_key), what that build changed in
the backbone: each changed backbone tensor as an int8 delta with one fp32 scale per row (the frozen
embeddings and lower layers are not stored), each tensor the backbone lacks (the scalar head, the
pooler) whole in fp32, the build's config.json and calibration, and the built model's scores of a
fixed probe of held-out triples. `assemble` puts them onto the installed backbone and checks the probe;
a missing file (the recipe or the pairs changed, so the key did) or a failed probe means the model is
built as before.

    python -m promedical.reward_model.shipped export [NAME]    # after a build: write data/shipped/NAME-KEY.npz
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "shipped"
PROBE_TRIPLES = 48            # held-out triples whose built scores travel with the part
PROBE_TOLERANCE = 0.05        # raw-score units; int8 deltas move a score by ~1e-3 (measured at export)
CALIBRATION_FILE = "promedical_calibration.json"


def shipped_file(name: str, key: str) -> Path:
    return SHIPPED_DIR / f"{name}-{key}.npz"


def _probe(max_triples: int = PROBE_TRIPLES) -> list[tuple[str, str, str]]:
    """A fixed set of (instruction, response, criterion) triples from the held-out pairs."""
    from promedical.reward.injection import instruction_text
    from promedical.reward.rubric_io import load_records

    records = load_records(Path(__file__).resolve().parent.parent / "data" / "pairs_heldout.jsonl")
    out = []
    for rec in records:
        texts = {c.id: c.text for c in rec.criteria}
        for pair in rec.pairs:
            out += [(instruction_text(rec), rec.responses[k].text, texts[pair.criterion_id])
                    for k in (pair.winner, pair.loser)]
            if len(out) >= max_triples:
                return out
    return out


def _probe_scores(model_dir: Path, max_length: int) -> np.ndarray:
    from promedical.reward_model.graders import TrainedGrader
    grader = TrainedGrader(str(model_dir), max_length=max_length, dtype="float32")
    return grader.raw_scores(_probe()).astype(np.float32)


def _quantise(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and fp32 scales, one scale per row (per tensor for 1-d)."""
    rows = delta.reshape(delta.shape[0], -1) if delta.ndim > 1 else delta.reshape(1, -1)
    scale = np.abs(rows).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return np.round(rows / scale).astype(np.int8), scale.astype(np.float32)


def export(name: str, built: Path, backbone: Path, out: Path, max_length: int) -> dict:
    """Write the trained part of `built` (a build of `name` from `backbone`) to `out`; returns sizes."""
    from promedical.reward_model.rm_train import load_scorer

    _, base = load_scorer(str(backbone))
    _, trained = load_scorer(str(built))
    base_state = base.state_dict()
    loaded = set(_backbone_keys(backbone, base))
    arrays: dict[str, np.ndarray] = {}
    for key, value in trained.state_dict().items():
        value = value.detach().float().numpy()
        if key not in loaded:
            arrays[f"full/{key}"] = value
            continue
        delta = value - base_state[key].detach().float().numpy()
        if np.any(delta):
            q, scale = _quantise(delta)
            arrays[f"q/{key}"], arrays[f"scale/{key}"] = q, scale
    arrays["config"] = np.frombuffer((built / "config.json").read_bytes(), dtype=np.uint8)
    arrays["calibration"] = np.frombuffer((built / CALIBRATION_FILE).read_bytes(), dtype=np.uint8)
    arrays["probe"] = _probe_scores(built, max_length)
    arrays["max_length"] = np.array([max_length])
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f"{name}-*.npz"):      # an older recipe's part would never be read again
        old.unlink()
    np.savez_compressed(out, **arrays)
    return {"file": str(out), "bytes": out.stat().st_size,
            "changed_tensors": sum(k.startswith("q/") for k in arrays),
            "whole_tensors": sum(k.startswith("full/") for k in arrays)}


def _backbone_keys(backbone: Path, model) -> list[str]:
    """State-dict keys of `model` that its backbone checkpoint supplies (the rest are freshly initialised)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        _, info = AutoModelForSequenceClassification.from_pretrained(str(backbone), num_labels=1,
                                                                     output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = set(info["missing_keys"])
    return [k for k in model.state_dict() if k not in missing]


def assemble(part: Path, backbone: Path, out: Path) -> bool:
    """Build `out` from `backbone` and the shipped `part`; False (and `out` left to the caller) if the probe
    scores do not match the build's."""
    import torch

    from promedical.reward_model.rm_train import load_scorer

    tokenizer, model = load_scorer(str(backbone))
    with np.load(part) as data:
        state = model.state_dict()
        for key in data.files:
            kind, _, name = key.partition("/")
            if kind == "full":
                state[name] = torch.from_numpy(data[key].copy())
            elif kind == "q":
                base = state[name].float()
                delta = data[key].astype(np.float32) * data[f"scale/{name}"]
                state[name] = base + torch.from_numpy(delta.reshape(base.shape))
        model.load_state_dict(state)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        (out / "config.json").write_bytes(data["config"].tobytes())
        (out / CALIBRATION_FILE).write_bytes(data["calibration"].tobytes())
        probe, max_length = data["probe"], int(data["max_length"][0])
    got = _probe_scores(out, max_length)
    return bool(np.max(np.abs(got - probe)) <= PROBE_TOLERANCE)


def main(argv: list[str]) -> int:
    from promedical.reward_model.ecir import SHIPPED_MODELS, build_minilm_ecir, ecir_dir, ecir_key
    from promedical.runtime.models import locked_build, minilm_dir

    if not argv or argv[0] != "export":
        print(__doc__)
        return 2
    name = argv[1] if len(argv) > 1 else "minilm-ecir"
    spec = SHIPPED_MODELS[name]
    built = locked_build(ecir_dir(name), lambda out: build_minilm_ecir(minilm_dir(), out, spec, name=name))
    if (built / ".assembled").exists():
        print(f"{built} was assembled from a shipped part, not built; export needs a build "
              f"(PROMEDICAL_CACHE=<empty dir> builds one)", file=sys.stderr)
        return 2
    print(json.dumps(export(name, built, minilm_dir(), shipped_file(name, ecir_key(spec)), spec["max_length"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
