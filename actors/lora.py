"""LoRA on the policy (PEFT): wrap the model, export one adapter version (PEFT format) or the merged weights.

Only the adapters train; the base weights stay frozen, so the base with the adapters switched off
(`base_model`) is the reference policy and no reference actor is needed. A version travels to the
generators as an `AdapterPayload` (megabytes, not the model), which a vLLM generator with LoRA enabled
writes to a local directory and serves by name and version; `merged_weights` gives full HF-named
weights for engines that cannot serve adapters (model.lora.merge_for_sync). torch and PEFT are imported
lazily, so the generator and deploy/ import this module without them.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADAPTER_NAME = "default"              # PEFT's name of the one adapter the policy trains
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)   # max_lora_rank values vLLM accepts


@dataclass(frozen=True)
class LoraSettings:
    """model.lora.* as the policy and generators need it (deploy/build.py makes it)."""

    rank: int = 0                      # 0 = off
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] | str = "all-linear"
    merge_for_sync: bool = False       # generators get merged full weights instead of the adapter
    save_merged: bool = False          # checkpoints also hold the merged HF model

    @property
    def on(self) -> bool:
        return self.rank > 0


@dataclass(frozen=True)
class AdapterPayload:
    """One adapter version as PEFT saves it: adapter_config.json's content and adapter_model.safetensors'
    tensors (PEFT names, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight, on CPU)."""

    config: dict[str, Any]
    tensors: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.tensors.values()))

    def write(self, directory: str | Path) -> Path:
        """DIR/adapter_config.json + DIR/adapter_model.safetensors: loadable by PEFT and by vLLM's LoRARequest."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "adapter_config.json").write_text(json.dumps(self.config, indent=1, sort_keys=True), encoding="utf-8")
        save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(out / "adapter_model.safetensors"),
                  metadata={"format": "pt"})
        return out


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of `rank`."""
    return next(r for r in VLLM_LORA_RANKS if r >= rank)


def wrap(model: Any, settings: LoraSettings) -> Any:
    """`model` with LoRA adapters on `settings.target_modules`; only the adapters require grad."""
    from peft import LoraConfig, get_peft_model

    targets = settings.target_modules if isinstance(settings.target_modules, str) else list(settings.target_modules)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def base_model(model: Any) -> contextlib.AbstractContextManager:
    """Context in which `model` (a PeftModel) computes with its adapters off: the frozen base, the reference."""
    return model.disable_adapter()


def adapter_params(model: Any) -> list[Any]:
    """The adapter parameters (what trains), in module order."""
    return [p for n, p in model.named_parameters() if "lora_" in n]


def adapter_payload(model: Any, dtype: Any, base_path: str) -> AdapterPayload:
    """The current adapter of `model` (parameters already gathered under ZeRO-3) as CPU tensors in `dtype`."""
    from peft import get_peft_model_state_dict

    config = model.peft_config[ADAPTER_NAME].to_dict()
    config = {k: sorted(v) if isinstance(v, (set, frozenset)) else v for k, v in config.items()}
    config["base_model_name_or_path"] = base_path
    config["peft_type"] = str(getattr(config.get("peft_type"), "value", config.get("peft_type")))
    config["task_type"] = str(getattr(config.get("task_type"), "value", config.get("task_type")))
    # the adapter alone: with an LM-head adapter on tied embeddings PEFT would add the (frozen) embeddings
    state = get_peft_model_state_dict(model, adapter_name=ADAPTER_NAME, save_embedding_layers=False)
    return AdapterPayload(config, {k: v.detach().to("cpu", dtype).clone() for k, v in state.items()})


def merged_weights(model: Any, dtype: Any) -> list[tuple[str, Any]]:
    """[(HF name, CPU tensor)] of base + adapter (W + B A alpha/r) without changing the model: the merge is
    computed per layer, so the frozen base stays bit-exact (it is the reference). Parameters gathered."""
    from peft.tuners.lora import LoraLayer

    inner = model.get_base_model()
    deltas = {f"{name}.weight": module.get_delta_weight(ADAPTER_NAME)
              for name, module in inner.named_modules()
              if isinstance(module, LoraLayer) and ADAPTER_NAME in module.lora_A}
    out = []
    for key, value in inner.state_dict().items():
        if "lora_" in key:
            continue
        name = key.replace(".base_layer.", ".")
        tensor = value.detach() + deltas[name].to(value.dtype) if name in deltas else value.detach()
        out.append((name, tensor.to("cpu", dtype).clone()))
    return out


def linear_names(model_path: str) -> tuple[set[str], str | None, bool]:
    """(last-component names of the model's linear layers, the LM head's name among them, whether the head
    shares its weight with the input embeddings), read from the config on the meta device: no weights
    loaded, so deploy/ checks model.lora.target_modules before any actor starts. `all-linear` is every
    one but the LM head; the head may be listed by name."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    names = {name.rsplit(".", 1)[-1]: module for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear)}
    head_name = next((n for n, m in names.items() if m is head), None)
    return set(names), head_name, bool(getattr(config, "tie_word_embeddings", False))


def target_problem(model_path: str, target_modules: str | list[str] | tuple[str, ...],
                   merged: bool = False) -> str | None:
    """One line naming model.lora.target_modules entries the model does not have, or a head adapter that
    merged weights (`merged`: model.lora.merge_for_sync or save_merged) cannot carry; None when good."""
    if isinstance(target_modules, str) and target_modules == "all-linear":
        return None
    wanted = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    have, head, tied = linear_names(model_path)
    missing = [t for t in wanted if t not in have]
    if missing:
        return (f"model.lora.target_modules: {', '.join(missing)} not a linear layer of {model_path}; choose "
                f"from {', '.join(sorted(have))}, or all-linear")
    if merged and tied and head in wanted:   # W + BA on a tied head would change the embeddings too
        return (f"model.lora.target_modules: {head} shares its weight with the input embeddings of "
                f"{model_path}, so merged weights cannot carry its adapter; drop {head} from the list or "
                f"set model.lora.merge_for_sync=false and model.lora.save_merged=false")
    return None
