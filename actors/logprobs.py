"""Per-token response logprobs of a causal LM, shared by the policy (with grad) and the reference.

The G responses of a GRPO group share one prompt, so the prompt is run once per micro-batch and its
key/value cache is shared by every response (the "shared prefix" forward): the transformer processes
P + G*T tokens instead of G*(P + T). Only the hidden states of response positions go through the LM
head, so the (tokens x vocab) logits of the prompt are never materialised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from promedical.runtime.devices import model_device


@dataclass
class GroupMicroBatch:
    prefix: torch.Tensor          # (1, P-1) prompt ids but the last; run once, its KV cache is shared
    inputs: torch.Tensor          # (N, T) last prompt token + response[:-1], right-padded with 0
    targets: torch.Tensor         # (N, T) response token ids, 0-padded
    mask: torch.Tensor            # (N, T) 1.0 on real response tokens
    rows: list[int]               # batch rows these come from

    def to(self, device: torch.device) -> "GroupMicroBatch":
        """The same micro-batch on `device` (itself when it is there already)."""
        if self.mask.device == device:
            return self
        return GroupMicroBatch(self.prefix.to(device), self.inputs.to(device), self.targets.to(device),
                               self.mask.to(device), self.rows)


def plan_group_micro_batches(group_ids: list[int], rows: list[int], micro_batch_size: int) -> list[list[int]]:
    """Rows split by group (in order of first appearance), each group in chunks of <= micro_batch_size."""
    groups: dict[int, list[int]] = {}
    for i in rows:
        groups.setdefault(group_ids[i], []).append(i)
    return [members[k: k + micro_batch_size] for members in groups.values()
            for k in range(0, len(members), micro_batch_size)]


def make_group_micro_batch(prompts: list[list[int]], responses: list[list[int]], rows: list[int]) -> GroupMicroBatch:
    prompt = prompts[rows[0]]
    if any(prompts[i] != prompt for i in rows):
        raise ValueError("a group micro-batch needs rows that share one prompt")
    width = max(1, max(len(responses[i]) for i in rows))
    n = len(rows)
    inputs = torch.zeros(n, width, dtype=torch.long)
    targets = torch.zeros(n, width, dtype=torch.long)
    mask = torch.zeros(n, width)
    for j, i in enumerate(rows):
        r = responses[i]
        if r:
            inputs[j, : len(r)] = torch.tensor([prompt[-1]] + r[:-1])
            targets[j, : len(r)] = torch.tensor(r)
            mask[j, : len(r)] = 1.0
        else:
            inputs[j, 0] = prompt[-1]
    return GroupMicroBatch(torch.tensor([prompt[:-1]], dtype=torch.long).reshape(1, -1), inputs, targets,
                           mask, list(rows))


def forward_logprobs(model: torch.nn.Module, mb: GroupMicroBatch, temperature: float,
                     shared_prefix: bool = True) -> torch.Tensor:
    """(N, T) log p(response token t | prompt, response_<t) at `temperature`; 0 where mask is 0."""
    return forward_logprobs_entropy(model, mb, temperature, with_entropy=False, shared_prefix=shared_prefix)[0]


def forward_logprobs_entropy(model: torch.nn.Module, mb: GroupMicroBatch, temperature: float,
                             with_entropy: bool = True,
                             shared_prefix: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """forward_logprobs and, when asked, the (N, T) entropy of each response position's distribution at
    `temperature` (no grad: a metric), 0 where mask is 0.

    `shared_prefix=False` runs each row's whole sequence through `model`'s own forward in one pass
    (same values; `model` may then be a DeepSpeed engine): DeepSpeed ZeRO-3 accumulates gradients
    correctly over micro-batches only when the forward goes through its engine (measured on CPU, gloo:
    with submodules called directly, two accumulated micro-batches updated with a gradient of norm
    2.38 instead of 3.16), so the ZeRO-3 policy uses this path.
    """
    from transformers import DynamicCache

    device = model_device(model)                      # every tensor below is built there
    mb = mb.to(device)
    n, width = mb.inputs.shape
    start = mb.prefix.shape[1]
    valid = (mb.mask.sum(-1, keepdim=True) > torch.arange(width, device=device)).long()
    valid[:, 0] = 1                                   # the last prompt token is always real
    attention = torch.cat([torch.ones(n, start, dtype=torch.long, device=device), valid], dim=1)
    if not shared_prefix:
        ids = torch.cat([mb.prefix.expand(n, -1), mb.inputs], dim=1)
        logits = model(input_ids=ids, attention_mask=attention,
                       position_ids=torch.arange(start + width, device=device).expand(n, -1),
                       logits_to_keep=width, use_cache=False).logits.float() / temperature     # (N, T, V)
    else:
        body = model.get_decoder()
        cache = DynamicCache(config=model.config)
        if start:
            body(input_ids=mb.prefix, past_key_values=cache, use_cache=True)
            for layer in cache.layers:    # share the prompt's keys and values with all N responses
                layer.keys = layer.keys.expand(n, -1, -1, -1)
                layer.values = layer.values.expand(n, -1, -1, -1)
        positions = torch.arange(start, start + width, device=device).expand(n, width)
        hidden = body(input_ids=mb.inputs, attention_mask=attention, position_ids=positions,
                      past_key_values=cache, use_cache=True).last_hidden_state          # (N, T, H)
        logits = model.get_output_embeddings()(hidden).float() / temperature            # (N, T, V)
    target_logits = torch.gather(logits, -1, mb.targets.unsqueeze(-1)).squeeze(-1)
    logp = (target_logits - torch.logsumexp(logits, dim=-1)) * mb.mask
    if not with_entropy:
        return logp, None
    with torch.no_grad():   # one row at a time: a (T, V) temporary, not another (N, T, V) one
        entropy = torch.stack([_entropy(row) for row in logits]) * mb.mask
    return logp, entropy


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """(T,) entropy -sum_v p_v log p_v of each position's distribution; logits (T, V)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    return -(log_probs.exp() * log_probs).sum(-1)


def unpad(values: torch.Tensor, mb: GroupMicroBatch, lengths: list[int]) -> dict[int, list[float]]:
    """Row index -> its response logprobs as a list (length = response length); one copy off the GPU."""
    values = values.detach().cpu()
    return {i: values[j, : lengths[i]].tolist() for j, i in enumerate(mb.rows)}
