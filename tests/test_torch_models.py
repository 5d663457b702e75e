"""The course's torch nets at three API levels, and the challenge net."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cvlab.models.challenge import ChallengeConfig, build
from cvlab.models.nets.torch_nets import (
    build_three_layer_convnet,
    build_two_layer_fc,
    random_weight,
    three_layer_convnet,
    two_layer_fc,
)
from cvlab.train.augment import predict_with_tta
from cvlab.vocab import API_LEVELS

BUILDERS = {
    "fc": lambda api, **kw: build_two_layer_fc(api, (3, 32, 32), kw.get("hidden", 4000), 10),
    "cnn": lambda api, **kw: build_three_layer_convnet(api, (3, 32, 32), 32, 16, 10),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("net", ["fc", "cnn"])
@pytest.mark.parametrize("api", API_LEVELS)
def test_scores_shape_on_zeros(net, api):
    torch.manual_seed(0)
    scores = BUILDERS[net](api)(torch.zeros(64, 3, 32, 32))
    assert scores.shape == (64, 10)


@pytest.mark.parametrize("net", ["fc", "cnn"])
def test_parameter_counts_equal_across_levels(net):
    counts = {api: count(BUILDERS[net](api)) for api in API_LEVELS}
    expected = (3072 * 4000 + 4000 + 4000 * 10 + 10 if net == "fc"
                else 32 * 3 * 25 + 32 + 16 * 32 * 9 + 16 + 16 * 32 * 32 * 10 + 10)
    assert set(counts.values()) == {expected}, counts


@pytest.mark.parametrize("net", ["fc", "cnn"])
@pytest.mark.parametrize("api", API_LEVELS)
def test_one_sgd_step_lowers_the_loss_on_a_fixed_batch(net, api):
    torch.manual_seed(1)
    model = BUILDERS[net](api, hidden=200)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    before = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = F.cross_entropy(model(x), y)
    assert after.item() < before.item()


def test_barebones_forwards_compute_the_same_function_as_the_modules():
    torch.manual_seed(2)
    x = torch.randn(5, 3, 32, 32)
    module = build_two_layer_fc("module", (3, 32, 32), hidden_dim=50, num_classes=10)
    params = [module.fc1.weight.T, module.fc1.bias, module.fc2.weight.T, module.fc2.bias]
    torch.testing.assert_close(two_layer_fc(x, params), module(x))
    convnet = build_three_layer_convnet("sequential", (3, 32, 32), channel_1=6, channel_2=4,
                                       num_classes=10)
    conv1, conv2, fc = convnet[0], convnet[2], convnet[5]
    params = [conv1.weight, conv1.bias, conv2.weight, conv2.bias, fc.weight.T, fc.bias]
    torch.testing.assert_close(three_layer_convnet(x, params), convnet(x))


def test_random_weight_is_kaiming_normal_with_the_course_fan_in():
    generator = torch.Generator().manual_seed(3)
    fc = random_weight((2000, 300), generator=generator)
    conv = random_weight((64, 8, 5, 5), generator=generator)
    assert fc.requires_grad and conv.requires_grad
    assert fc.std().item() == pytest.approx(math.sqrt(2 / 2000), rel=0.02)
    assert conv.std().item() == pytest.approx(math.sqrt(2 / 200), rel=0.05)


def challenge_net(widths, depth=2):
    """The challenge net of the schema's defaults at other widths (seeded with 0)."""
    return build(ChallengeConfig(widths=list(widths), depth=depth), (3, 32, 32), 10, seed=0)


@pytest.mark.parametrize("depth", [2, 3])
def test_challenge_net_shapes_and_parameter_groups(depth):
    torch.manual_seed(4)
    model = challenge_net((8, 16, 16), depth=depth)
    assert model(torch.zeros(64, 3, 32, 32)).shape == (64, 10)
    groups = model.param_groups(learning_rate=0.5, weight_decay=0.002, bias_lr_scale=64)
    grouped = [p for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(trainable) and {id(p) for p in grouped} == {id(p) for p in trainable}
    for group in groups:  # the per-step decay lr * weight_decay is the same in every group
        assert group["lr"] * group["weight_decay"] == pytest.approx(0.002)
    assert not model.whiten.weight.requires_grad


def test_whitening_filters_decorrelate_training_patches():
    torch.manual_seed(5)
    mixing = torch.randn(3, 3)
    images = torch.einsum("dc,nchw->ndhw", mixing, torch.randn(200, 3, 8, 8)) + 0.5
    model = challenge_net((8, 8, 8))
    model.init_whitening(images, eps=0.0)
    half = model.whiten.weight.shape[0] // 2
    out = F.conv2d(images, model.whiten.weight[:half])
    flat = out.permute(1, 0, 2, 3).reshape(half, -1)
    covariance = torch.cov(flat)
    torch.testing.assert_close(covariance, torch.eye(half), atol=0.05, rtol=0)


def test_whitening_stays_float32_under_bf16_autocast():
    # smooth images (neighbouring pixels nearly equal) give whitening filters with large gains,
    # whose outputs bf16 rounding would ruin; the model must compute them in float32
    torch.manual_seed(7)
    images = F.interpolate(torch.randn(64, 3, 8, 8), size=32, mode="bilinear")
    images = images + 0.01 * torch.randn_like(images)
    model = challenge_net((8, 8, 8)).eval()
    model.init_whitening(images)
    seen = []
    model.whiten.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(images)
    plain, mixed = seen
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain)
    rounded = F.conv2d(images.bfloat16(), model.whiten.weight.bfloat16(),
                       model.whiten.bias.bfloat16()).float()
    assert (rounded - plain).norm() > 0.01 * plain.norm()  # what bf16 would have cost


def test_flip_tta_is_mirror_invariant():
    torch.manual_seed(6)
    model = challenge_net((8, 8, 8)).eval()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(predict_with_tta(model, x, "flip"),
                               predict_with_tta(model, x.flip(-1), "flip"), atol=1e-5, rtol=1e-5)
    assert predict_with_tta(model, x, "flip_translate").shape == (4, 10)
