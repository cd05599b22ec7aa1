"""The shared-prefix forward gives the same logprobs (and gradients) as running every full sequence."""
import pytest
import torch

from promedical.actors.logprobs import forward_logprobs, make_group_micro_batch, plan_group_micro_batches


@pytest.fixture(scope="module")
def model():
    from transformers import AutoModelForCausalLM
    from promedical.actors.models import resolve_model
    return AutoModelForCausalLM.from_pretrained(resolve_model("tiny")).eval()


def _full_sequence_logprobs(model, prompt, response):
    logits = model(torch.tensor([prompt + response])).logits[0].float()
    logp = torch.log_softmax(logits, -1)[len(prompt) - 1: len(prompt) - 1 + len(response)]
    return logp.gather(-1, torch.tensor(response).unsqueeze(-1)).squeeze(-1)


def test_shared_prefix_matches_full_sequences(model):
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(10, 400, (17,), generator=gen).tolist()
    responses = [torch.randint(10, 400, (n,), generator=gen).tolist() for n in (5, 9, 1, 0, 7)]
    mb = make_group_micro_batch([prompt] * 5, responses, list(range(5)))
    shared = forward_logprobs(model, mb, temperature=1.0)
    for j, r in enumerate(responses):
        if r:
            torch.testing.assert_close(shared[j, :len(r)], _full_sequence_logprobs(model, prompt, r),
                                       atol=1e-5, rtol=0)
        assert (shared[j, len(r):] == 0).all()


def test_gradients_flow_through_the_shared_prompt(model):
    prompt, responses = [11, 12, 13, 14], [[20, 21], [22]]
    model.zero_grad()
    forward_logprobs(model, make_group_micro_batch([prompt] * 2, responses, [0, 1]), 1.0).sum().backward()
    shared = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    sum(_full_sequence_logprobs(model, prompt, r).sum() for r in responses).backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(shared[name], param.grad, atol=1e-5, rtol=1e-4)
    model.zero_grad()


def test_plan_keeps_groups_apart_and_chunks_them():
    group_ids = [7, 7, 7, 3, 3, 7]
    assert plan_group_micro_batches(group_ids, list(range(6)), 2) == [[0, 1], [2, 5], [3, 4]]
    with pytest.raises(ValueError, match="share one prompt"):
        make_group_micro_batch([[1, 2], [1, 3]], [[5], [6]], [0, 1])
