"""The seed's gated conv autoencoder: shapes, parameter counts, structure, native vs gemm convolutions."""

from __future__ import annotations

import copy

import pytest
import torch

from earshot.benchmark.config import load_config
from earshot.models import GatedConvAutoencoder, build_model, count_parameters, training_flops_per_window
from earshot.models.autoencoder import GatedLayer

# Counted from REFERENCE.md's layer table: 1→256 k16, 256→512 k8, 2× 512→512 k8, 512→512 k4,
# two convolutions per layer, linear 512→128, no biases.
SEED_ENCODER_PARAMS = 12_656_640
# Mirrored decoder with 512→256 in the last gated layer, final 256→1 k16 (two convolutions).
SEED_DECODER_PARAMS = 11_018_240


def test_seed_preset_is_the_seed_architecture():
    config = load_config("seed")
    model = build_model(config.model, config.data.window)
    encoder = sum(p.numel() for p in model.encoder.parameters()) + model.to_code.weight.numel()
    decoder = sum(p.numel() for p in model.decoder.parameters())
    assert encoder == SEED_ENCODER_PARAMS  # "about 12.7 M" in REFERENCE.md
    assert decoder == SEED_DECODER_PARAMS
    assert count_parameters(model) == 23_674_880
    assert all(not isinstance(m, torch.nn.Conv1d) or m.bias is None for m in model.modules())
    x = torch.randn(2, 2048)
    code = model.encode(x)
    assert code.shape == (2, 128)
    assert model.decode(code).shape == (2, 1, 2048)


def test_committed_code_variant_has_the_quoted_25_8_million_parameters():
    # The seed's committed decoder keeps 512 channels in its last gated layer (the
    # channel mismatch REFERENCE.md mentions); that variant is the "≈25.8 M" figure.
    model = GatedConvAutoencoder(decoder_channels=(512, 512, 512, 512))
    assert count_parameters(model) == 25_780_224


def test_init_is_normal_with_std_0_02():
    torch.manual_seed(0)
    model = GatedConvAutoencoder()
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert abs(weights.mean().item()) < 1e-4
    assert abs(weights.std().item() - 0.02) < 1e-4


@pytest.mark.parametrize("preset", ["quick", "tiny"])
def test_small_presets_keep_the_structure(preset):
    config = load_config(preset)
    model = build_model(config.model, config.data.window, head_channels=3)
    assert len(model.encoder) == 5 and len(model.decoder) == 5
    assert model(torch.randn(3, config.data.window)).shape == (3, 3, config.data.window)
    assert count_parameters(model) < 1_000_000


def test_head_channels_follow_the_loss():
    model = GatedConvAutoencoder(encoder_channels=(8, 16, 16, 16, 16), decoder_channels=(16, 16, 16, 8),
                                 latent=4, head_channels=256)
    assert model(torch.randn(1, 2048)).shape == (1, 256, 2048)


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="not 1"):
        GatedConvAutoencoder(window=4096)


def test_flop_count_matches_the_layer_table():
    # Forward MACs by hand: 2 convs per layer × Cin·Cout·K·Lout (Lin for transposed).
    encoder = 2 * (256 * 16 * 256 + 256 * 512 * 8 * 64 + 512 * 512 * 8 * 16 + 512 * 512 * 8 * 4
                   + 512 * 512 * 4 * 1) + 512 * 128
    decoder = 2 * (128 * 512 * 4 * 1 + 512 * 512 * 8 * 4 + 512 * 512 * 8 * 16 + 512 * 256 * 8 * 64
                   + 256 * 1 * 16 * 256)
    assert training_flops_per_window(GatedConvAutoencoder()) == 3 * 2 * (encoder + decoder)


def test_one_fused_convolution_equals_the_seeds_two():
    # A gated layer runs conv and gate as one convolution; it must equal the seed's two.
    from earshot.models.autoencoder import pixel_norm

    torch.manual_seed(1)
    model = GatedConvAutoencoder(encoder_channels=(8, 16, 16, 16, 16), decoder_channels=(16, 16, 16, 8), latent=8)
    x = torch.randn(3, 2048)

    def two_convolutions(layer, h):
        value = layer.conv(h)
        gate = layer.gate(h)
        if layer.gating == "sigmoid":
            return value * torch.sigmoid(gate)
        return torch.tanh(pixel_norm(value)) * torch.sigmoid(pixel_norm(gate))

    h = x.unsqueeze(1)
    for layer in model.encoder:
        h = two_convolutions(layer, h)
    h = model.to_code(h.squeeze(-1)).unsqueeze(-1)
    for layer in model.decoder:
        h = two_convolutions(layer, h)
    torch.testing.assert_close(model(x), h, rtol=1e-6, atol=1e-7)


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


@pytest.mark.parametrize("preset", ["tiny", "quick", "seed"])
def test_gemm_convolutions_match_the_native_ones_in_every_preset(preset):
    # The same parameters run both ways: outputs and gradients agree to float32 rounding.
    config = load_config(preset)
    torch.manual_seed(0)
    native = build_model(config.model, config.data.window)
    gemm = copy.deepcopy(native).set_conv_impl("gemm")
    assert all(layer.conv_impl == "gemm" for layer in [*gemm.encoder, *gemm.decoder])
    x = torch.randn(2, config.data.window)
    target = torch.randn(2, 1, config.data.window)
    outputs = []
    for model in (native, gemm):
        out = model(x)
        (out * target).sum().backward()
        outputs.append(out.detach())
    assert _relative_error(outputs[1], outputs[0]) < 1e-5
    for (name, p_native), p_gemm in zip(native.named_parameters(), gemm.parameters()):
        assert _relative_error(p_gemm.grad, p_native.grad) < 1e-4, name


def test_the_conv_impl_changes_no_parameter_and_can_be_switched_back():
    config = load_config("tiny")
    model = build_model(config.model, config.data.window)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = dict(model.init_args)
    model.set_conv_impl("gemm")
    assert model.state_dict().keys() == before.keys() and model.init_args == args  # checkpoints unchanged
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = torch.randn(2, config.data.window)
    gemm_out = model(x)
    native_out = model.set_conv_impl("native")(x)
    assert _relative_error(gemm_out, native_out) < 1e-5


@pytest.mark.parametrize("gating", ["sigmoid", "none"])
def test_gemm_matches_native_for_every_gating(gating):
    torch.manual_seed(2)
    native = GatedConvAutoencoder(encoder_channels=(8, 16, 16, 16, 16), decoder_channels=(16, 16, 16, 8), latent=8,
                                  gating=gating, head_channels=3)
    gemm = copy.deepcopy(native).set_conv_impl("gemm")
    x = torch.randn(2, 2048)
    assert _relative_error(gemm(x), native(x)) < 1e-5


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("stride, padding, length", [(1, 0, 5), (2, 1, 7), (4, 3, 9), (4, 6, 10), (8, 4, 33)])
def test_a_gemm_layer_matches_native_for_any_padding_and_length(transposed, stride, padding, length):
    # Including inputs whose padded length is not a whole number of strides: conv1d drops
    # the tail that no output frame reaches, and so does the gemm path.
    torch.manual_seed(3)
    layer = GatedLayer(6, 5, 2 * stride, stride, padding, transposed=transposed, gating="tanh-sigmoid",
                       pixel_norm=True)
    x = torch.randn(3, 6, length)
    native = layer(x)
    layer.set_conv_impl("gemm")
    assert layer(x).shape == native.shape
    assert _relative_error(layer(x), native) < 1e-5


def test_gemm_is_refused_for_a_kernel_other_than_twice_the_stride():
    # The last encoder layer (and so the first decoder layer) is kernel 4, stride 1.
    model = GatedConvAutoencoder(encoder_channels=(8, 16, 16, 16, 16), decoder_channels=(16, 16, 16, 8), latent=8,
                                 encoder_strides=(8, 4, 4, 4, 1))
    with pytest.raises(ValueError, match=r"^encoder\.4: conv_impl 'gemm' needs kernel = 2 × stride; "
                                         r"this layer has kernel 4, stride 1, padding 0$"):
        model.set_conv_impl("gemm")
    assert all(layer.conv_impl == "native" for layer in [*model.encoder, *model.decoder])  # none switched
    with pytest.raises(ValueError, match="conv_impl must be one of native, gemm, not 'fast'"):
        model.set_conv_impl("fast")
