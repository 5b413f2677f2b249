"""Tests for htnet_lib.models (HTNet): sizes, parity with the authors' model (vit-pytorch 0.35.8 NesT), weights files,
vmap over stacked weights, input checks and FLOP counts."""
from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file
from torch.func import functional_call, stack_module_state
from vit_pytorch.nest import NesT  # test-only dev dependency, pinned to 0.35.8 (the authors' model)

from htnet_lib._io import HTNetInputError
from htnet_lib.config import AUTHORS_SCRIPT
from htnet_lib.models import registry
from htnet_lib.models.convert import convert_nest_state_dict
from htnet_lib.models.costs import count_parameters, flops_by_level, flops_per_sample
from htnet_lib.models.htnet import HTNet, HTNetConfig, stage_names
from htnet_lib.models.io import WEIGHTS_FORMAT, _config_to_json, load_weights, save_weights

def nest_for(cfg: HTNetConfig) -> torch.nn.Module:
    """The authors' model for a config (vit-pytorch 0.35.8 NesT; dim_head is unused there)."""
    return NesT(image_size=cfg.image_size, patch_size=cfg.patch_size, dim=cfg.dim, heads=cfg.heads,
                num_hierarchies=cfg.num_hierarchies, block_repeats=cfg.block_repeats,
                num_classes=cfg.num_classes, mlp_mult=cfg.mlp_mult, channels=cfg.channels)


def maps_like_data(n: int, cfg: HTNetConfig, seed: int = 0) -> torch.Tensor:
    """Random inputs scaled like the released data (raw 0..255 maps)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, cfg.channels, cfg.image_size, cfg.image_size, generator=g) * 255


# a config whose blocks hold 2x2 positions, so attention mixes positions (the paper's config has one per block)
TWO_LEVELS = HTNetConfig(dim=48, heads=3, num_hierarchies=2, block_repeats=(2, 2))


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("repeats, expected", [((2, 2, 10), 139_582_982), ((2, 2, 2), 38_968_838)])
def test_parameter_counts_match_authors_code(repeats, expected):
    cfg = HTNetConfig(block_repeats=repeats)
    with torch.device("meta"):
        ours, theirs = HTNet(cfg), nest_for(cfg)
    assert count_parameters(ours) == expected
    assert count_parameters(theirs) == expected
    # the converter maps every key of the authors' state dict onto ours, shape for shape
    theirs_sd = theirs.state_dict()
    assert len(theirs_sd) == {(2, 2, 10): 171, (2, 2, 2): 83}[repeats]
    converted = convert_nest_state_dict(theirs_sd)
    ours_sd = ours.state_dict()
    assert set(converted) == set(ours_sd)
    assert all(converted[k].shape == ours_sd[k].shape for k in ours_sd)


def test_widths_heads_and_blocks_per_hierarchy():
    with torch.device("meta"):
        m = HTNet(AUTHORS_SCRIPT)
    hierarchies = [s.hierarchy for s in m.stages]
    assert [h.layers[0].attn.qkv.out_features // 3 for h in hierarchies] == [255, 510, 1020]  # heads*(dim//heads)
    assert [h.layers[0].attn.heads for h in hierarchies] == [3, 6, 12]
    assert [h.blocks_per_side for h in hierarchies] == [4, 2, 1]
    assert [h.pos_embed.numel() for h in hierarchies] == [1, 1, 1]
    assert [len(h.layers) for h in hierarchies] == [2, 2, 10]
    assert isinstance(m.stages[2].aggregation, torch.nn.Identity)  # no aggregation after the last level
    norms = [mod for mod in m.modules() if isinstance(mod, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 14 + 2 + 1 and all(n.eps == 1e-5 for n in norms)  # the authors' eps, not timm's 1e-6


# ---------------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("cfg", [HTNetConfig(block_repeats=(2, 2, 2)), TWO_LEVELS], ids=["paper-222-dim256", "two-levels"])
def test_outputs_equal_authors_model(cfg):
    torch.manual_seed(123)
    theirs = nest_for(cfg).eval()
    torch.manual_seed(123)
    fresh = HTNet(cfg)  # same seed: same initial weights as the authors' model (same creation order and init)
    converted = convert_nest_state_dict(theirs.state_dict())
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, converted[k]), k
    ours = HTNet(cfg).eval()
    ours.load_state_dict(converted, strict=True)
    x = maps_like_data(6, cfg)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == (6, cfg.num_classes)
    assert expected.std(0).min() > 1e-3  # outputs depend on the input: the comparison is not vacuous
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_attention_is_nontrivial_with_larger_blocks():
    torch.manual_seed(0)
    m = HTNet(TWO_LEVELS).eval()
    x = maps_like_data(3, TWO_LEVELS)
    maps = m.attention_maps(x)
    assert list(maps) == ["hierarchy0.layer0", "hierarchy0.layer1", "hierarchy1.layer0", "hierarchy1.layer1"]
    a = maps["hierarchy0.layer0"]
    assert a.shape == (3, 4, 3, 4, 4)  # (B, blocks, heads, positions, positions): 2x2 blocks of 2x2 positions
    assert maps["hierarchy1.layer0"].shape == (3, 1, 6, 4, 4)
    torch.testing.assert_close(a.sum(-1), torch.ones(3, 4, 3, 4))
    assert (a.max() - a.min()) > 0.05
    # the explicit-softmax path used for the maps gives the same hierarchy output as the fused path
    h = m.patch_embedding(x)
    with torch.no_grad():
        torch.testing.assert_close(m.stages[0].hierarchy(h, []), m.stages[0].hierarchy(h), atol=1e-4, rtol=1e-5)


def test_one_token_fast_path_equals_full_attention():
    """With one token per block, attention skips the query and key projections; the explicit softmax path gives the
    same outputs and gradients, and q/k receive exactly zero gradient either way (so Adam never moves them)."""
    from htnet_lib.models.htnet import Attention

    torch.manual_seed(0)
    attn = Attention(24, 3)
    x = torch.randn(5, 16, 1, 24, requires_grad=True)
    fast = attn(x)
    full, weights = attn(x, return_attention=True)
    assert torch.equal(weights, torch.ones_like(weights))
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-6)
    g_fast = torch.autograd.grad(fast.square().sum(), [x, attn.qkv.weight])
    g_full = torch.autograd.grad(full.square().sum(), [x, attn.qkv.weight])
    for a, b in zip(g_fast, g_full):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    inner = attn.heads * attn.head_dim
    assert torch.count_nonzero(g_full[1][:2 * inner]) == 0 and torch.count_nonzero(g_fast[1][:2 * inner]) == 0


def test_paper_config_blocks_hold_one_token():
    cfg = HTNetConfig(dim=16, block_repeats=(1, 1, 1))
    m = HTNet(cfg).eval()
    x = maps_like_data(2, cfg)
    maps = m.attention_maps(x)
    assert maps["hierarchy0.layer0"].shape == (2, 16, 3, 1, 1)
    assert all(torch.equal(a, torch.ones_like(a)) for a in maps.values())
    levels = m.forward_levels(x)
    assert list(levels) == stage_names(cfg) == ["patch_embedding", "hierarchy0", "aggregation0", "hierarchy1",
                                                "aggregation1", "hierarchy2", "head"]
    assert {k: tuple(v.shape) for k, v in levels.items()} == {
        "patch_embedding": (2, 16, 4, 4), "hierarchy0": (2, 16, 4, 4), "aggregation0": (2, 32, 2, 2),
        "hierarchy1": (2, 32, 2, 2), "aggregation1": (2, 64, 1, 1), "hierarchy2": (2, 64, 1, 1), "head": (2, 3)}
    with torch.no_grad():
        torch.testing.assert_close(levels["head"], m(x))


def test_converter_rejects_unknown_keys_and_strips_module_prefix():
    cfg = HTNetConfig(dim=8, block_repeats=(1, 1, 1))
    sd = nest_for(cfg).state_dict()
    prefixed = {f"module.{k}": v for k, v in sd.items()}
    assert set(convert_nest_state_dict(prefixed)) == set(HTNet(cfg).state_dict())
    with pytest.raises(HTNetInputError, match="mlp_head.9.weight"):
        convert_nest_state_dict({**sd, "mlp_head.9.weight": torch.zeros(1)})


# ---------------------------------------------------------------------------------------------------- weights files


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(1)
    m = HTNet(TWO_LEVELS).eval()
    path = tmp_path / "w.safetensors"
    save_weights(m, path, metadata={"note": "test"})
    assert path.read_bytes()[:8] != b"\x80\x02\x8a\x0a"  # not a pickle
    loaded = load_weights(path).eval()
    assert loaded.cfg == TWO_LEVELS
    x = maps_like_data(4, TWO_LEVELS)
    with torch.no_grad():
        assert torch.equal(loaded(x), m(x))


def test_loading_wrong_shapes_names_file_and_key(tmp_path):
    cfg = HTNetConfig(dim=8, block_repeats=(1, 1, 1))
    sd = {k: v.contiguous() for k, v in HTNet(cfg).state_dict().items()}
    sd["stages.1.hierarchy.layers.0.mlp.fc1.weight"] = torch.zeros(7, 16)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path), metadata={"htnet_config": _config_to_json(cfg), "format": WEIGHTS_FORMAT})
    with pytest.raises(HTNetInputError) as err:
        load_weights(path)
    assert err.value.field == "stages.1.hierarchy.layers.0.mlp.fc1.weight"
    assert str(path) in str(err.value) and "(7, 16)" in str(err.value) and "(64, 16)" in str(err.value)

    # a file of the previous layout (separate hierarchies/aggregations lists) is refused by its format version
    save_file(sd, str(path), metadata={"htnet_config": _config_to_json(cfg), "format": "htnet_lib.HTNet/1"})
    with pytest.raises(HTNetInputError, match="HTNet/1") as err:
        load_weights(path)
    assert err.value.field == "format"

    no_config = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(1)}, str(no_config))
    with pytest.raises(HTNetInputError, match="htnet_config"):
        load_weights(no_config)
    with pytest.raises(HTNetInputError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(HTNetInputError, match="garbage.safetensors"):
        load_weights(garbage)


# ---------------------------------------------------------------------------------------------------- vmap


@pytest.mark.parametrize("cfg", [TWO_LEVELS, HTNetConfig(dim=24, block_repeats=(1, 1, 2))], ids=["two-levels", "three-levels"])
def test_vmap_over_stacked_weights_matches_separate_models(cfg):
    torch.manual_seed(2)
    models = [HTNet(cfg) for _ in range(4)]
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def call(p, b, x):
        return functional_call(skeleton, (p, b), (x,))

    x = maps_like_data(5, cfg)
    for train in (False, True):
        skeleton.train(train)
        for m in models:
            m.train(train)
        got = torch.vmap(call, in_dims=(0, 0, None))(params, buffers, x)
        expected = torch.stack([m(x) for m in models])
        assert got.shape == (4, 5, cfg.num_classes)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # gradients of a summed loss match too
    got.square().sum().backward()
    expected.square().sum().backward()
    for i, m in enumerate(models):
        # some gradients are ~0 by symmetry (a one-position pos_embed in front of LayerNorms): scale atol by the
        # model's largest gradient rather than per tensor
        scale = max(p.grad.abs().max().item() for p in m.parameters())
        for name, p in m.named_parameters():
            torch.testing.assert_close(params[name].grad[i], p.grad, atol=1e-5 * scale, rtol=1e-4,
                                       msg=lambda s: f"{name}: {s}")
    # one input batch per model
    xs = torch.stack([maps_like_data(3, cfg, seed=s) for s in range(4)])
    with torch.no_grad():
        got = torch.vmap(call)(params, buffers, xs)
        expected = torch.stack([m(xs[i]) for i, m in enumerate(models)])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("arch", sorted(registry.NETWORKS))
def test_every_network_meets_the_contract(arch):
    """Every registered network (its default config) meets the contract of docs/extending.md (`check_contract`):
    logits of the right shape, and a wrong shape or an integer tensor is one error naming the `input` field, the shape
    it expects and the one it got."""
    registry.check_contract(registry.network(arch).config())


def test_a_network_that_skips_the_input_check_breaks_the_contract(monkeypatch):
    from typing import Literal

    from torch import nn

    monkeypatch.setattr(registry, "NETWORKS", dict(registry.NETWORKS))  # the registration does not leak
    class LaxConfig(registry.ModelConfig):
        arch: Literal["lax"] = "lax"

    @registry.register_model(LaxConfig)
    def lax(cfg):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(cfg.num_classes))

    with pytest.raises(HTNetInputError, match="'lax' breaks the contract") as e:
        registry.check_contract(LaxConfig())
    assert e.value.field == "arch"


def test_constructor_needs_model_config():
    with pytest.raises(TypeError):
        HTNet({"dim": 8})


# ---------------------------------------------------------------------------------------------------- FLOPs


def test_flops_of_paper_config():
    cfg = AUTHORS_SCRIPT  # (2, 2, 10)
    forward = flops_per_sample(cfg, train=False)

    def layer(d, tokens):  # one-token blocks: value and output projections (width 255 per 256) and the 4x MLP
        inner = d // 256 * 255
        return tokens * 2 * (d * inner + inner * d + 2 * d * 4 * d)

    assert forward == 2 * 147 * 256 * 16 + 2 * layer(256, 16) + 2 * layer(512, 4) + 10 * layer(1024, 1) \
        + 2 * 9 * (256 * 512 * 16 + 512 * 1024 * 4) + 2 * 1024 * 3 == 370_079_744
    # forward + backward ~3x (the patch embedding has no input gradient); the authors' full attention would add the
    # query and key projections: 428,660,384 forward, 1.28 GFLOP per training sample (NOTES)
    assert flops_per_sample(cfg, train=True) == 1_109_035_008
    levels = flops_by_level(cfg)
    assert list(levels) == stage_names(cfg) + ["total"]
    assert levels["total"] == forward == sum(v for k, v in levels.items() if k != "total")
    assert levels["patch_embedding"] == 2 * 147 * 256 * 16  # 16 patches of 7*7*3 values -> 256
    assert levels["aggregation0"] == 2 * 256 * 512 * 9 * 16  # 3x3 conv 256 -> 512 on the 4x4 map
    assert levels["aggregation1"] == 2 * 512 * 1024 * 9 * 4
    assert levels["head"] == 2 * 1024 * 3
    assert flops_by_level(cfg, train=True)["total"] == flops_per_sample(cfg, train=True)


def test_tables_and_figures_name_each_network_by_its_entry():
    assert [registry.network_name(registry.network(a).config()) for a in ("htnet", "ststnet", "offapexnet")] == \
        ["HTNet", "STSTNet", "OFFApexNet"]
