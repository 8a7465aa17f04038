"""Imbalance-VLM's model side: the encoder's last-layer tokens and the TokenDecoder on top."""
import numpy as np
import pytest
import torch
from torch import nn

from ltbench.core.errors import UserError
from ltbench.methods.decoder.model import TokenDecoder
from ltbench.models.backbones import BackboneSpec
from ltbench.models.clip import ClipModel, _open_clip
from ltbench.models.factory import create_backbone

TEXT_CFG = {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}


def small_clip(vision_cfg: dict, embed_dim: int = 32) -> ClipModel:
    """A random-init open_clip CLIP with a custom (small) image tower."""
    torch.manual_seed(0)
    model = _open_clip().model.CLIP(embed_dim, vision_cfg, TEXT_CFG).eval()
    return ClipModel(model, tokenizer=None, spec=BackboneSpec("open_clip", "custom", None, "custom"))


def reproduce_encode_image(clip: ClipModel, images: torch.Tensor):
    """The model's own ln_post + pooling + proj applied to encode_tokens, and encode_image."""
    visual = clip.model.visual
    with torch.no_grad():
        tokens = clip.encode_tokens(images)
        pooled, _ = visual._pool(tokens)
        return tokens, pooled @ visual.proj, clip.model.encode_image(images)


# ViT-B/16's layout (patch 16, CLS + 14x14 at 224 px) at a size that runs in a blink, and variants
# of what open_clip does after the transformer.
VIT_CONFIGS = {
    "b16-like": {"image_size": 64, "patch_size": 16, "width": 96, "layers": 2, "head_width": 32},
    "avg-pool": {"image_size": 48, "patch_size": 16, "width": 64, "layers": 1, "head_width": 32,
                 "pool_type": "avg"},
    "ln-after-pool, no ln_pre": {"image_size": 48, "patch_size": 8, "width": 64, "layers": 1,
                                 "head_width": 32, "final_ln_after_pool": True, "no_ln_pre": True},
    "patch dropout (off in eval)": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 1,
                                    "head_width": 32, "patch_dropout": 0.5},
}


def test_tiny_vit_tokens_reproduce_encode_image():
    torch.manual_seed(0)
    clip = create_backbone("tiny")
    images = torch.randn(3, 3, 32, 32)
    tokens, rebuilt, reference = reproduce_encode_image(clip, images)
    assert tokens.dtype == torch.float32
    assert tokens.shape == (3, clip.num_tokens, clip.token_width) == (3, 17, 64)
    assert clip.token_shape == (17, 64)
    torch.testing.assert_close(rebuilt, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(VIT_CONFIGS))
def test_custom_vit_tokens_reproduce_encode_image(name):
    cfg = VIT_CONFIGS[name]
    clip = small_clip(cfg)
    images = torch.randn(2, 3, cfg["image_size"], cfg["image_size"])
    tokens, rebuilt, reference = reproduce_encode_image(clip, images)
    grid = (cfg["image_size"] // cfg["patch_size"]) ** 2
    assert tokens.shape == (2, grid + 1, cfg["width"]) == (2, clip.num_tokens, clip.token_width)
    torch.testing.assert_close(rebuilt, reference, rtol=1e-5, atol=1e-5)


def test_vit_b16_token_shape_without_running_it():
    clip = small_clip({"image_size": 224, "patch_size": 16, "width": 64, "layers": 0, "head_width": 32})
    assert clip.num_tokens == 197 and clip.token_count(224) == 197
    with pytest.raises(UserError, match="224 px"):
        clip.token_count(336)


def test_resnet_tokens_are_the_layer4_map_with_its_mean_first():
    clip = small_clip({"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 64})
    visual = clip.model.visual
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = clip.encode_tokens(images)
        feature_map = visual.forward_intermediates(images, indices=[4], intermediates_only=True)[
            "image_intermediates"][0]
        batch, channels, height, width = feature_map.shape
        grid = tokens[:, 1:].transpose(1, 2).reshape(batch, channels, height, width)
        pooled = visual.attnpool(grid)  # CLIP's own attention pool on our tokens
        reference = clip.model.encode_image(images)
    assert tokens.shape == (2, 2 * 2 + 1, 512) == (2, clip.num_tokens, clip.token_width)
    torch.testing.assert_close(grid, feature_map)
    torch.testing.assert_close(tokens[:, 0], tokens[:, 1:].mean(dim=1))
    torch.testing.assert_close(pooled, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [32, 64, 70, 100, 224])
def test_resnet_token_count_follows_the_image_size(size):
    clip = small_clip({"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 64})
    with torch.no_grad():
        tokens = clip.encode_tokens(torch.randn(1, 3, size, size))
    assert tokens.shape[1] == clip.token_count(size)


def test_other_image_towers_have_no_tokens():
    clip = create_backbone("tiny")
    clip.model.visual = nn.Identity()
    with pytest.raises(UserError, match="only available for open_clip ViT and ModifiedResNet"):
        clip.encode_tokens(torch.randn(1, 3, 32, 32))
    with pytest.raises(UserError, match="Identity"):
        _ = clip.token_width


# ---- TokenDecoder ----

def test_decoder_shapes():
    decoder = TokenDecoder(64, 10)
    tokens = torch.randn(5, 17, 64)
    assert (decoder.depth, decoder.heads, decoder.mlp_ratio) == (3, 4, 0.5)
    assert decoder(tokens).shape == (5, 10)
    assert decoder.features(tokens).shape == (5, 64)
    assert isinstance(decoder.head, nn.Linear) and decoder.head.weight.shape == (10, 64)
    assert decoder(tokens.half()).dtype == torch.float32  # cached float16 tokens are fine


def test_depth_zero_is_a_linear_probe_on_the_cls():
    torch.manual_seed(0)
    decoder = TokenDecoder(32, 7, depth=0)
    tokens = torch.randn(4, 9, 32)
    assert len(decoder.blocks) == 0
    expected = decoder.head(tokens[:, 0])  # the code: the raw CLS token into the classifier
    torch.testing.assert_close(decoder(tokens), expected)
    tokens[:, 1:] += 100.0  # patch tokens do not matter
    torch.testing.assert_close(decoder(tokens), expected)


def test_default_has_no_final_layernorm_as_in_the_code():
    decoder = TokenDecoder(32, 7, depth=2, heads=4)
    outside_blocks = [name for name, module in decoder.named_modules()
                      if isinstance(module, nn.LayerNorm) and not name.startswith("blocks.")]
    assert outside_blocks == []
    tokens = torch.randn(3, 5, 32)
    x = tokens
    for block in decoder.blocks:
        x = block(x)
    torch.testing.assert_close(decoder(tokens), decoder.head(x[:, 0]))


def test_final_norm_option_normalises_the_cls_before_the_head():
    torch.manual_seed(0)
    decoder = TokenDecoder(32, 7, depth=0, final_norm=True)
    tokens = torch.randn(4, 9, 32) * 5 + 3
    cls = tokens[:, 0]
    by_hand = (cls - cls.mean(1, keepdim=True)) / torch.sqrt(cls.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(decoder(tokens), decoder.head(by_hand), rtol=1e-4, atol=1e-4)


def test_features_then_head_is_forward_and_patch_tokens_matter_with_blocks():
    torch.manual_seed(0)
    decoder = TokenDecoder(32, 3, depth=2, heads=4).eval()
    tokens = torch.randn(2, 5, 32)
    torch.testing.assert_close(decoder.head(decoder.features(tokens)), decoder(tokens))
    changed = tokens.clone()
    changed[:, 1:] += torch.randn_like(changed[:, 1:])  # (a constant shift would vanish in LayerNorm)
    assert not torch.allclose(decoder(tokens), decoder(changed))


@pytest.mark.parametrize("width, mlp_ratio", [(64, 0.5), (768, 0.5), (1024, 0.5), (48, 4.0)])
def test_parameter_count_of_a_block(width, mlp_ratio):
    hidden = int(width * mlp_ratio)
    per_block = 4 * width * width + 2 * width * hidden + 9 * width + hidden
    assert TokenDecoder.block_parameter_count(width, mlp_ratio) == per_block
    probe, decoder = TokenDecoder(width, 5, depth=0), TokenDecoder(width, 5, depth=2, mlp_ratio=mlp_ratio)
    assert sum(p.numel() for p in probe.parameters()) == width * 5 + 5
    assert sum(p.numel() for p in decoder.parameters()) == 2 * per_block + width * 5 + 5
    normed = TokenDecoder(width, 5, depth=0, final_norm=True)  # + the LayerNorm's weight and bias
    assert sum(p.numel() for p in normed.parameters()) == 2 * width + width * 5 + 5


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    decoder = TokenDecoder(32, 4, depth=2, heads=4)
    loss = nn.functional.cross_entropy(decoder(torch.randn(6, 5, 32)), torch.arange(6) % 4)
    loss.backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_decoder_rejects_bad_settings():
    with pytest.raises(UserError, match="not divisible by heads 5"):
        TokenDecoder(64, 10, heads=5)
    with pytest.raises(UserError, match="depth"):
        TokenDecoder(64, 10, depth=-1)
    TokenDecoder(64, 10, depth=0, heads=5)  # no attention, heads do not matter
    with pytest.raises(ValueError, match=r"\[B, T, 64\]"):
        TokenDecoder(64, 10)(torch.randn(2, 5, 32))


def test_eval_transform_resize_then_centre_crop_as_the_imagenet_recipe():
    from ltbench.data.transforms import TransformSpec

    image = np.zeros((1, 8, 8), dtype=np.uint8)
    image[:, 2:6, 2:6] = 255  # a bright centre square, half the side
    plain = TransformSpec(size=4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bilinear")
    code = TransformSpec(size=4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="bilinear", resize=8)
    assert torch.equal(code.apply_batch(image), torch.ones(1, 3, 4, 4))  # resize 8 (none), crop the centre
    assert plain.apply_batch(image).min() < 1.0  # resize to 4 first: the dark border blends in
    assert plain.fingerprint()["resize"] is None and code.fingerprint()["resize"] == 8
