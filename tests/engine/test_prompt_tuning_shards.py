"""CoOp on GPUs (issue 22, finding 13): a step reads nothing back from the device and copies no
index to it once its chunk layout is built, and under torchrun each process encodes a share of
the class prompts, gathered with their gradients: the same features, loss and context gradient
as one process (2 CPU processes, gloo)."""
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ltbench.methods.prompt_tuning.method import build_tuner, global_targets
from ltbench.models.factory import create_backbone

NAMES = [f"class {i} " + "word " * (i % 5) for i in range(13)]  # prompts of several lengths
BATCH, WIDTH = 8, 64  # the tiny CLIP's embedding width


def _tuner(class_specific: bool, device="cpu"):
    clip = create_backbone("tiny", "cpu")
    clip.model.eval().requires_grad_(False)
    options = {"n_ctx": 4, "class_specific": class_specific, "class_position": "end", "init": "random",
               "init_std": 0.02, "init_phrase": "a photo of a"}
    tuner = build_tuner(clip, NAMES, options, seed=0, logit_scale=100.0, chunk=4, checkpointing=True, device="cpu")
    if device != "cpu":
        clip.to(device)
        tuner.to(device)
    return clip, tuner


def _batch():
    generator = torch.Generator().manual_seed(2)
    features = F.normalize(torch.randn(BATCH, WIDTH, generator=generator), dim=-1)
    return features, torch.randint(0, len(NAMES), (BATCH,), generator=generator)


def _step(tuner, module, features, targets):
    tuner.learner.ctx.grad = None
    loss = F.cross_entropy(module(features), global_targets(targets))
    loss.backward()
    return loss.detach(), tuner.learner.ctx.grad.clone()


def test_a_step_reads_nothing_back_and_copies_no_index_to_the_device(monkeypatch):
    """'meta' stands in for the GPU: any read of a device value (.item(), bool(), .cpu(), the
    causal-mask comparison) fails there, and every host tensor sent to it is counted. Before,
    a step compared the causal mask on the device and copied one index per chunk of 256
    prompts plus the inverse order: 34 blocking syncs a step at iNaturalist's 8142 classes."""
    clip, tuner = _tuner(class_specific=False, device="meta")
    features, targets = (tensor.to("meta") for tensor in _batch())
    _step(tuner, tuner, features, targets)  # builds the chunk layout: its indices go to the device once
    sent = []
    real_to = torch.Tensor.to

    def counting_to(tensor, *args, **kwargs):
        result = real_to(tensor, *args, **kwargs)
        if tensor.device.type == "cpu" and result.device.type == "meta":
            sent.append(tuple(tensor.shape))
        return result

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    for _ in range(2):
        loss, grad = _step(tuner, tuner, features, targets)
    assert loss.device.type == "meta" and grad.device.type == "meta" and grad.shape == tuner.learner.ctx.shape
    assert sent == []


def _worker(rank, world, port, out):
    from ltbench.core import distributed

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    features, targets = _batch()
    results = {}
    for class_specific in (False, True):
        clip, tuner = _tuner(class_specific)
        encoded = []
        embeddings = tuner.learner.embeddings
        tuner.learner.embeddings = lambda rows, encoded=encoded, embeddings=embeddings: (
            encoded.append(len(rows)) or embeddings(rows))
        module = distributed.wrap_for_training(tuner, torch.device("cpu"))
        # This process's images are the global positions rank, rank + world, ... (ShardedSampler).
        loss, grad = _step(tuner, module, features[rank::world], targets[rank::world])
        prompts_a_step = sum(encoded)
        with torch.no_grad():
            text = tuner.text_features()
        results[class_specific] = {"loss": loss, "grad": grad, "text": text, "prompts": prompts_a_step}
    torch.save(results, Path(out) / f"rank{rank}.pt")


@pytest.mark.slow  # two spawned processes: outside the inner loop
def test_two_processes_share_the_prompts_and_match_one_process(tmp_path, spawn_two):
    spawn_two(_worker, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    features, targets = _batch()
    for class_specific in (False, True):
        _, tuner = _tuner(class_specific)
        loss, grad = _step(tuner, tuner, features, targets)
        with torch.no_grad():
            text = tuner.text_features()
        for result in (ranks[0][class_specific], ranks[1][class_specific]):
            # ceil(13 / 2) = 7 of the 13 prompts a step, not all of them: forward and the
            # checkpointed chunks' second forward in the backward pass.
            assert result["prompts"] == 2 * 7
            torch.testing.assert_close(result["text"], text, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(result["loss"], loss, atol=1e-6, rtol=1e-5)
            scale = float(grad.abs().max())
            torch.testing.assert_close(result["grad"], grad, atol=1e-5 * scale, rtol=1e-4)
