"""Tests for htnet_lib.ststnet: shapes, parameter and FLOP counts, vmap over stacked weights (BatchNorm buffers and
dropout included), input checks."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from htnet_lib._io import HTNetInputError
from htnet_lib.models.costs import count_flops, count_parameters, flops_per_sample
from htnet_lib.models.htnet import HTNet, HTNetConfig
from htnet_lib.models.ststnet import STSTNet


def maps_like_data(n: int, seed: int = 0, size: int = 28) -> torch.Tensor:
    """Random inputs scaled like the released data (raw 0..255 maps)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 255


# ---------------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("kw, conv, pooled", [({}, 30, 10), ({"padding": 1}, 28, 10),
                                              ({"image_size": 32, "padding": 1}, 32, 11)])
def test_stage_shapes(kw, conv, pooled):
    m = STSTNet(**kw).eval()
    size = kw.get("image_size", 28)
    x = maps_like_data(4, size=size)
    assert (m.cfg.conv_size, m.cfg.maxpool_size, m.cfg.pooled_size) == (conv, pooled, pooled // 2)
    assert m.conv1(x).shape == (4, 3, conv, conv)
    assert [tuple(s.shape) for s in m.streams(x)] == [(4, c, pooled, pooled) for c in (3, 5, 8)]
    assert m.forward_features(x).shape == (4, 16 * (pooled // 2) ** 2)
    assert m(x).shape == (4, 3)
    assert STSTNet(num_classes=5, **kw)(x).shape == (4, 5)


def test_default_is_the_authors_port():
    m = STSTNet()
    assert (m.cfg.dropout, m.cfg.batch_norm, m.cfg.padding) == (0.5, True, 2)
    assert m.fc.in_features == 400  # 16 channels x 5 x 5
    assert list(m.state_dict()) == [  # the key names of the authors' main.py
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias",
        *[f"bn{i}.{k}" for i in (1, 2, 3) for k in ("weight", "bias", "running_mean", "running_var",
                                                   "num_batches_tracked")],
        "fc.weight", "fc.bias"]
    assert not any(isinstance(mod, nn.Dropout) for mod in STSTNet(dropout=0.0).modules())
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in STSTNet(batch_norm=False).modules())


def test_seeded_init_follows_the_authors_creation_order():
    # conv1, conv2, conv3 then fc with PyTorch's default init (BatchNorm's init draws no random numbers)
    torch.manual_seed(7)
    ref = [nn.Conv2d(3, c, 3, padding=2) for c in (3, 5, 8)] + [nn.Linear(400, 3)]
    torch.manual_seed(7)
    m = STSTNet()
    for r, ours in zip(ref, [m.conv1, m.conv2, m.conv3, m.fc]):
        assert torch.equal(r.weight, ours.weight) and torch.equal(r.bias, ours.bias)


def test_forward_is_the_documented_layer_stack():
    torch.manual_seed(3)
    m = STSTNet(dropout=0.0)
    x = maps_like_data(6)
    m.train()
    got = m(x)
    streams = []
    for conv in (m.conv1, m.conv2, m.conv3):
        y = F.relu(F.conv2d(x, conv.weight, conv.bias, padding=2))
        y = F.batch_norm(y, None, None, torch.ones(y.shape[1]), torch.zeros(y.shape[1]), training=True, eps=1e-5)
        streams.append(F.max_pool2d(y, 3, 3, padding=1))
    expected = F.linear(F.avg_pool2d(torch.cat(streams, 1), 2).flatten(1), m.fc.weight, m.fc.bias)
    torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("kw, expected", [({}, 1683), ({"batch_norm": False}, 1651), ({"padding": 1}, 1683)])
def test_parameter_count(kw, expected):
    # convolutions: (3*3*3 + 1) weights+bias per filter, 3 + 5 + 8 = 16 filters -> 28 * 16 = 448
    # BatchNorm: a scale and a shift per channel -> 2 * 16 = 32 (running statistics are buffers, not counted)
    # linear: 16 channels * 5 * 5 = 400 inputs, 3 outputs -> 400 * 3 + 3 = 1203
    # 448 + 32 + 1203 = 1683; without BatchNorm 1651. Padding 1 or 2 both give 5x5 maps, hence the same count.
    with torch.device("meta"):
        m = STSTNet(**kw)
    assert count_parameters(m) == expected


def test_flops_per_sample():
    # forward, padding 2: each stream's conv gives 30x30 outputs of a 3x3x3 kernel, 16 filters in all:
    #   2 * 27 * 16 * 900 = 777,600; the linear layer 2 * 400 * 3 = 2,400 -> 780,000
    # backward: the input needs no gradient, so the convs cost one weight gradient (777,600); the linear layer
    #   a weight and an input gradient (2 * 2,400) -> 1,562,400 in all
    m = STSTNet()
    assert count_flops(m, train=False) == 780_000
    assert count_flops(m, train=True) == 1_562_400
    # padding 1 ('same'): 28x28 conv outputs
    assert count_flops(STSTNet(padding=1), train=False) == 2 * 27 * 16 * 784 + 2400 == 679_776
    # the real model is left as it was: mode, weights (no gradients) and running statistics
    assert m.training and all(p.grad is None for p in m.parameters())
    assert torch.equal(m.bn1.running_mean, torch.zeros(3)) and m.bn1.num_batches_tracked.item() == 0
    assert count_flops(m, (3, 28, 28)) == 1_562_400


def test_count_flops_is_generic():
    cfg = HTNetConfig(dim=16, block_repeats=(1, 1, 1))
    for train in (False, True):
        assert count_flops(HTNet(cfg), train=train) == flops_per_sample(cfg, train=train)
    with pytest.raises(HTNetInputError, match="input_shape"):
        count_flops(nn.Linear(3, 2))
    assert count_flops(nn.Linear(3, 2), (3,), train=False) == 2 * 3 * 2


def test_flops_per_sample_is_counted_once_per_config_of_any_kind(monkeypatch):
    """Counted once per (config, train), and a config holding a list (unhashable, as a user's network may) works."""
    from htnet_lib.models import costs

    class Listed(HTNetConfig):
        notes: list[int] = [1, 2]

    calls = []
    monkeypatch.setattr(costs, "_COUNTED", {})
    monkeypatch.setattr(costs, "build_on_meta", lambda cfg: cfg)  # the key is under test, not the network
    monkeypatch.setattr(costs, "count_flops", lambda m, train: calls.append(train) or len(calls))
    a, b = HTNetConfig(dim=16, block_repeats=(1, 1, 1)), HTNetConfig(dim=16, block_repeats=(1, 1, 1))
    assert [flops_per_sample(a), flops_per_sample(b), flops_per_sample(a, False)] == [1, 1, 2]
    assert flops_per_sample(Listed(dim=16, block_repeats=(1, 1, 1))) == 3 and calls == [True, False, True]


# ---------------------------------------------------------------------------------------------------- vmap


def stacked(models: list[nn.Module]):
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def call(p, b, x):
        return functional_call(skeleton, (p, b), (x,))

    return params, buffers, skeleton, call


@pytest.mark.parametrize("batch_norm", [True, False], ids=["batchnorm", "plain"])
def test_vmap_over_stacked_weights_matches_separate_models(batch_norm):
    """In float64, so the comparison is tight on any CPU and thread count: in float32 the two sum a convolution's
    weight gradient in another order, and on an AVX2 CPU at 2 threads that moved one element by 1.5e-4 relatively."""
    torch.manual_seed(2)
    models = [STSTNet(dropout=0.0, batch_norm=batch_norm).double() for _ in range(3)]
    params, buffers, skeleton, call = stacked(models)
    x = maps_like_data(8).double()
    skeleton.train()
    for m in models:
        m.train()
    got = torch.vmap(call, in_dims=(0, 0, None), randomness="different")(params, buffers, x)
    expected = torch.stack([m(x) for m in models])
    assert got.shape == (3, 8, 3) and expected.std(1).min() > 1e-3  # not a vacuous comparison
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    # BatchNorm updated each model's slice of the stacked running statistics, in place, as it did the models'
    for name, b in models[0].named_buffers():
        for i, m in enumerate(models):
            torch.testing.assert_close(buffers[name][i], dict(m.named_buffers())[name], atol=1e-10, rtol=1e-10)
    # one Adam step on a summed loss: the stacked optimiser equals one Adam per model (Adam is elementwise)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    stacked_opt = torch.optim.Adam(list(params.values()), lr=1e-3)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    F.cross_entropy(got.flatten(0, 1), y.repeat(3), reduction="sum").backward()
    sum(F.cross_entropy(e, y, reduction="sum") for e in expected).backward()
    for i, m in enumerate(models):
        for name, p in m.named_parameters():
            torch.testing.assert_close(params[name].grad[i], p.grad, atol=1e-10, rtol=1e-10, msg=lambda s: f"{name}: {s}")
    stacked_opt.step()
    for o in opts:
        o.step()
    for i, m in enumerate(models):
        for name, p in m.named_parameters():
            torch.testing.assert_close(params[name][i], p, atol=1e-10, rtol=1e-10)
    # eval mode (running statistics), one input batch per model
    skeleton.eval()
    for m in models:
        m.eval()
    xs = torch.stack([maps_like_data(5, seed=s) for s in range(3)]).double()
    with torch.no_grad():
        got = torch.vmap(call)(params, buffers, xs)
        expected = torch.stack([m(xs[i]) for i, m in enumerate(models)])
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)


def test_vmap_with_dropout_draws_a_mask_per_model():
    torch.manual_seed(4)
    model = STSTNet()  # dropout 0.5
    params, buffers, skeleton, call = stacked([copy.deepcopy(model) for _ in range(3)])  # three identical models
    skeleton.train()
    x = maps_like_data(4)
    out = torch.vmap(call, in_dims=(0, 0, None), randomness="different")(params, buffers, x)
    assert out.shape == (3, 4, 3)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])  # different masks
    out.sum().backward()  # gradients flow through the stacked weights
    assert all(p.grad is not None for p in params.values())
    skeleton.eval()
    with torch.no_grad():
        out = torch.vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    torch.testing.assert_close(out[0], out[1])  # no dropout in eval: identical models agree again


# ---------------------------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("kw, field", [({"dropout": 1.0}, "dropout"), ({"num_classes": 0}, "num_classes"),
                                       ({"padding": -1}, "padding"), ({"image_size": 1}, "image_size")])
def test_bad_hyper_parameters_name_the_field(kw, field):
    with pytest.raises(HTNetInputError) as err:
        STSTNet(**kw)
    assert err.value.field == field
