"""Tests for htnet_lib.models.offapexnet: parameter and FLOP counts by hand, shapes, the two streams and the u, v
channels they read from the release, input and config checks, and a tiny real-data LOSO run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from htnet_lib import config, loso, models, regions
from htnet_lib._io import HTNetInputError
from htnet_lib.loso import engines
from htnet_lib.models.costs import count_flops, count_parameters
from htnet_lib.models.offapexnet import MEB_VARIANT, OFFApexNet, OFFApexNetConfig


def flow_like_data(n: int, seed: int = 0, size: int = 28) -> torch.Tensor:
    """Random (u, v) inputs scaled like the released maps (raw 0..255)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, size, size, generator=g) * 255


# ---------------------------------------------------------------------------------------------------- sizes


def test_parameter_count_by_hand():
    # each stream: 5x5 conv 1 -> 6: 1*5*5*6 + 6 = 156; 5x5 conv 6 -> 16: 6*5*5*16 + 16 = 2,416; 156 + 2,416 = 2,572
    # two streams (u, v): 2 * 2,572 = 5,144
    # 'same' padding and two 2x2 max-pools: 28 -> 14 -> 7, so 16 * 7 * 7 = 784 features a stream, 1,568 both
    # linear 1,568 -> 1,024: 1,568 * 1,024 + 1,024 = 1,606,656
    # linear 1,024 -> 1,024: 1,024 * 1,024 + 1,024 = 1,049,600
    # linear 1,024 -> 3: 1,024 * 3 + 3 = 3,075
    # 5,144 + 1,606,656 + 1,049,600 + 3,075 = 2,664,475 (the STSTNet paper's Table V lists 2.77 M)
    streams = 2 * ((1 * 5 * 5 * 6 + 6) + (6 * 5 * 5 * 16 + 16))
    hidden = (1568 * 1024 + 1024) + (1024 * 1024 + 1024)
    head = 1024 * 3 + 3
    assert (streams, hidden, head) == (5_144, 2_656_256, 3_075)
    with torch.device("meta"):
        m = OFFApexNet()
    assert count_parameters(m) == streams + hidden + head == 2_664_475
    assert models.parameter_count(OFFApexNetConfig()) == 2_664_475  # the registry entry builds the same network
    # MEB's kernel (3x3) and single hidden layer, still two streams: 2*(60 + 880) + 1,568*1,024 + 1,024 + 3,075
    assert models.parameter_count(OFFApexNetConfig(kernel_size=3, fc_layers=1)) == 1_611_611


def test_meb_variant_parameter_count_by_hand():
    # MEB's OffApexNet (meb/models/me_networks.py): one stream over (u, v): 3x3 conv 2 -> 6: 2*9*6 + 6 = 114;
    # 3x3 conv 6 -> 16: 6*9*16 + 16 = 880; 16 * 7 * 7 = 784 features; linear 784 -> 1,024: 803,840; 1,024 -> 3: 3,075
    assert 114 + 880 + 803_840 + 3_075 == 807_909
    assert count_parameters(OFFApexNet(**MEB_VARIANT)) == 807_909
    assert models.parameter_count(OFFApexNetConfig(**MEB_VARIANT)) == 807_909


def test_meb_variant_is_mebs_network_layer_for_layer():
    """MEB's forward, written out from its source (conv1, pool, conv2, pool, flatten, drop, fc1, ReLU, drop2, fc),
    with the same weights, gives the same logits; in training mode the two dropouts are where MEB has them."""
    torch.manual_seed(2)
    m = OFFApexNet(**MEB_VARIANT).eval()
    conv1, conv2 = [mod for mod in m.streams[0] if isinstance(mod, nn.Conv2d)]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.padding) == (2, 6, (3, 3), (1, 1))
    fc1, fc = m.hidden[0], m.head

    def meb_forward(x, drop=lambda t: t):
        x = F.max_pool2d(F.relu(conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(conv2(x)), 2, 2)
        x = x.view(x.shape[0], -1)
        return fc(drop(F.relu(fc1(drop(x)))))

    x = flow_like_data(4) / 127.5 - 1
    with torch.no_grad():
        torch.testing.assert_close(m(x), meb_forward(x), rtol=0, atol=0)
        m.train()
        torch.manual_seed(5)
        ours = m(x)
        torch.manual_seed(5)
        theirs = meb_forward(x, drop=lambda t: F.dropout(t, 0.5, training=True))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_flops_per_sample():
    # forward, multiply-add = 2: convs 2 * 2 * (25*6*784 + 150*16*196) = 2,352,000; linear layers
    # 2 * (1,568*1,024 + 1,024*1,024 + 1,024*3) = 5,314,560
    m = OFFApexNet()
    assert count_flops(m, train=False) == 2_352_000 + 5_314_560 == 7_666_560
    # forward + backward: three times the forward, less the first convolutions' input gradients (the input needs none)
    assert count_flops(m, train=True) == 3 * 7_666_560 - 2 * 2 * 25 * 6 * 784 == 22_529_280
    assert models.flops_per_sample(OFFApexNetConfig()) == 22_529_280


# ---------------------------------------------------------------------------------------------------- shapes


def test_output_shape_and_layer_stack():
    torch.manual_seed(0)
    m = OFFApexNet().eval()
    x = flow_like_data(4)
    assert m.forward_features(x).shape == (4, 1568)
    assert m(x).shape == (4, 3)
    assert OFFApexNet(num_classes=5)(x).shape == (4, 5)
    assert OFFApexNet(image_size=32)(flow_like_data(2, size=32)).shape == (2, 3)  # 32 -> 16 -> 8
    assert len(m.streams) == 2 and len(m.hidden) == 2 and m.head.in_features == 1024
    assert [mod.kernel_size for mod in m.modules() if isinstance(mod, nn.Conv2d)] == [(5, 5)] * 4
    assert all(d.p == 0.5 for d in m.modules() if isinstance(d, nn.Dropout))  # the published default
    assert not any(isinstance(d, nn.Dropout) for d in OFFApexNet(dropout=0.0).modules())
    assert OFFApexNetConfig().dropout == 0.0  # params' default: trainable by the batched engine


def test_each_stream_reads_one_flow_channel():
    torch.manual_seed(1)
    m = OFFApexNet().eval()
    x = flow_like_data(3)
    y = x.clone()
    y[:, 1] = flow_like_data(3, seed=9)[:, 1]  # change v only
    with torch.no_grad():
        fx, fy = m.forward_features(x), m.forward_features(y)
        assert torch.equal(fx[:, :784], fy[:, :784])  # the u stream's features are untouched
        assert not torch.allclose(fx[:, 784:], fy[:, 784:])
        assert torch.equal(fx[:, :784], m.streams[0](x[:, :1]))  # u stream first
        assert torch.equal(fx[:, 784:], m.streams[1](x[:, 1:]))


def test_reads_u_then_v_of_the_release_maps(samples, flow_maps):
    cfg = OFFApexNetConfig()
    g = models.geometry(cfg)
    assert g.map_channels == (2, 1) and g.shape == (2, 28, 28) and g.regions == ("whole",)
    assert [models.registry.MAP_CHANNELS[c] for c in g.map_channels] == ["u", "v"]
    p = config.params_from_dict({"arch": "offapexnet", "regions": "whole"})
    few = samples.iloc[[0, 150, 300, 441]]
    X = regions.model_inputs(few, flow_maps[few.index], p.train, g, progress=False)
    assert X.shape == (4, 2, 28, 28) and X.dtype == torch.float32
    maps = torch.from_numpy(flow_maps[few.index]).float()  # (N, 28, 28, 3): (strain, v, u)
    assert torch.equal(X[:, 0], maps[..., 2]) and torch.equal(X[:, 1], maps[..., 1])  # u, then v; raw 0..255
    assert not torch.equal(X[:, 0], X[:, 1])  # two different maps
    with pytest.raises(HTNetInputError) as e:  # the whole map only, not the four facial regions
        regions.model_inputs(few, flow_maps[few.index], p.replace(regions="official").train, g,
                             progress=False)
    assert e.value.field == "regions"


# ---------------------------------------------------------------------------------------------------- checks


def test_config_round_trip_through_params():
    flat = {"arch": "offapexnet", "filters": [6, 16], "kernel_size": 5, "pool_size": 2, "fc_width": 1024,
            "fc_layers": 2, "dropout": 0.5, "regions": "whole"}
    p = config.params_from_dict(flat)
    assert type(p.model) is OFFApexNetConfig
    assert p.model == OFFApexNetConfig(dropout=0.5) and p.model.filters == (6, 16)
    again = config.params_from_dict(p.to_flat())
    assert again == p and again.fingerprint() == p.fingerprint()
    assert p.replace(fc_width=512).fingerprint() != p.fingerprint()
    net = models.build(p.model)
    assert isinstance(net, OFFApexNet) and net.cfg is p.model and count_parameters(net) == 2_664_475
    assert p.model.describe() == {"input": "u | v", "conv": "6-16@5x5", "fc": "2x1024"}
    meb = config.params_from_dict({**flat, **MEB_VARIANT})
    assert meb.model == OFFApexNetConfig(dropout=0.5, **MEB_VARIANT) and config.params_from_dict(meb.to_flat()) == meb
    assert meb.model.describe() == {"input": "u+v", "conv": "6-16@3x3", "fc": "1x1024 +feature dropout"}
    assert count_parameters(models.build(meb.model)) == 807_909
    assert engines.batchable(config.params_from_dict({"arch": "offapexnet"}).model)  # params' default: no dropout
    assert engines.batchable(p.model)  # dropout drawn per fold


@pytest.mark.parametrize("kw, field", [({"channels": 3}, "channels"), ({"filters": []}, "filters"),
                                       ({"filters": [6, 0]}, "filters"), ({"kernel_size": 4}, "kernel_size"),
                                       ({"image_size": 3}, "image_size"), ({"dropout": 1.0}, "dropout"),
                                       ({"fc_width": 0}, "fc_width"), ({"fc_layers": -1}, "fc_layers"),
                                       ({"streams": 3}, "streams"), ({"feature_dropout": "yes"}, "feature_dropout")])
def test_bad_hyper_parameters_name_the_field(kw, field):
    with pytest.raises(HTNetInputError) as err:
        config.params_from_dict({"arch": "offapexnet", **kw}, source="p.yaml")
    assert err.value.field == field and "p.yaml" in str(err.value)


# ---------------------------------------------------------------------------------------------------- real data


def test_tiny_loso_run_on_the_release(samples, flow_maps, tmp_path):
    """Two folds, two epochs, at the published dropout (the loop engine, which `engine: auto` picks for dropout);
    predictions.csv holds every held-out sample of both folds."""
    p = config.params_from_dict({"arch": "offapexnet", "dropout": 0.5, "regions": "whole", "preprocessing": "scaled",
                                 "epochs": 2, "batch_size": 256, "lr": 1.0e-4, "folds": ["s01", "sub01"],
                                 "engine": "auto", "runs_dir": str(tmp_path / "runs"), "progress": False})
    X = regions.model_inputs(samples, flow_maps, p.train, models.geometry(p.model), progress=False)
    assert X.shape == (442, 2, 28, 28) and X.min() >= -1 and X.max() <= 1
    run = loso.run_loso(p, samples=samples, X=X)
    assert run.finished and run.meta["numerics"]["engine"] == "loop"
    preds = run.predictions()
    held_out = samples[samples["subject"].isin(["s01", "sub01"])]
    assert len(preds) == len(held_out) == 9
    assert sorted(preds["sample"]) == sorted(held_out["sample"]) and set(preds["subject"]) == {"s01", "sub01"}
    assert {"last", "paper"} <= set(preds.columns) and preds["last"].isin([0, 1, 2]).all()
    assert run.meta["params"]["arch"] == "offapexnet" and run.meta["params"]["fc_width"] == 1024


def test_batched_engine_equals_the_loop_without_dropout(samples, flow_maps):
    """At the params' default (no dropout) the batched engine trains each fold exactly as the loop does."""
    p = config.params_from_dict({"arch": "offapexnet", "regions": "whole", "preprocessing": "scaled", "epochs": 2,
                                 "fc_width": 64, "folds": ["s01", "s02"], "progress": False})
    X = regions.model_inputs(samples, flow_maps, p.train, models.geometry(p.model), progress=False)
    y = torch.tensor(samples["label"].to_numpy())
    plans = engines.same_batch_count(loso.plan_folds(samples, p.train), p)
    assert [q.subject for q in plans] == ["s01", "s02"]
    alone = engines.train_loop(X, y, plans, p)
    batch = engines.train_batched(X, y, plans, p)
    for a, b in zip(alone, batch):
        np.testing.assert_array_equal(a.test_pred, b.test_pred)
        np.testing.assert_allclose(a.test_logits, b.test_logits, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-5)
