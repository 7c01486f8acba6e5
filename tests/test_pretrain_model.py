"""CrystalTransformer model, batching and loss: shapes, padding, composition mode, masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ct_plugins.pretrain.batching import (
    Batch,
    TargetScaler,
    bucket_batches,
    collate,
    discover_tasks,
    padding_fraction,
    split_by_formula,
)
from ct_plugins.pretrain.compositions import composition_samples
from ct_plugins.pretrain.model import CrystalTransformer, CTConfig, forward_flops
from ct_plugins.pretrain.train import masked_l1

TINY = dict(embed_dim=8, n_layers=2, n_heads=2, ff_dim=16, head_hidden=8, dropout=0.0)


@pytest.fixture(scope="module")
def mp_samples(request):
    data = request.config.rootpath / "tests" / "data"
    return composition_samples(data / "mp_e_form_sample.csv", data / "mp_gap_sample.csv", progress=False)


def make_model(readout: str = "first", tasks=("ef", "eg")) -> CrystalTransformer:
    torch.manual_seed(0)
    return CrystalTransformer(CTConfig(**TINY, tasks=tasks, readout=readout)).eval()


def padded(z_rows, coords_rows, has_coords):
    length = max(len(z) for z in z_rows)
    z = torch.zeros(len(z_rows), length, dtype=torch.long)
    coords = torch.zeros(len(z_rows), length, 3)
    for i, (zi, ci) in enumerate(zip(z_rows, coords_rows)):
        z[i, : len(zi)] = torch.tensor(zi)
        coords[i, : len(zi)] = torch.tensor(ci, dtype=torch.float32)
    return z, coords, torch.tensor(has_coords)


def test_paper_defaults():
    config = CTConfig()
    assert (config.embed_dim, config.d_model, config.n_layers, config.n_heads, config.ff_dim) == (
        128, 256, 8, 8, 512,
    )
    assert config.dropout == 0.1 and config.readout == "first"
    assert CTConfig.from_dict(config.to_dict()) == config


def test_output_shapes_and_embedding_rows():
    model = make_model()
    z, coords, has = padded([[26, 26, 8, 8, 8], [11, 17]], [np.ones((5, 3)), np.ones((2, 3))], [True, False])
    assert model(z, coords, has).shape == (2, 2)
    rows = model.element_rows()
    assert rows.shape == (100, 8)
    # The lookup is exactly the one-hot Linear(100, C) of the paper.
    one_hot = torch.nn.functional.one_hot(z.clamp(min=1) - 1, 100).float()
    expected = model.atom_embedding(one_hot)
    assert torch.allclose(model.embed(z, coords, has)[..., :8][z > 0], expected[z > 0], atol=1e-6)


@pytest.mark.parametrize("readout", ["first", "mean"])
def test_padding_does_not_change_the_output(readout):
    model = make_model(readout)
    short = ([20, 22, 8, 8, 8], np.random.default_rng(0).normal(size=(5, 3)))
    long = (list(range(1, 13)), np.random.default_rng(1).normal(size=(12, 3)))
    alone = model(*padded([short[0]], [short[1]], [True]))
    together = model(*padded([short[0], long[0]], [short[1], long[1]], [True, True]))
    assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_composition_mode_ignores_coordinates_and_mixes_with_structures():
    model = make_model()
    z = [38, 22, 8, 8, 8]
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    comp_a = model(*padded([z], [a], [False]))
    comp_b = model(*padded([z], [b], [False]))
    assert torch.equal(comp_a, comp_b)  # coordinate branch is zeroed
    assert not torch.allclose(model(*padded([z], [a], [True])), model(*padded([z], [b], [True])))
    mixed = model(*padded([z, z], [a, a], [False, True]))
    assert torch.allclose(mixed[0], comp_a[0], atol=1e-6)


def test_centred_coordinates_make_the_output_translation_invariant_and_padding_safe():
    torch.manual_seed(0)
    model = CrystalTransformer(CTConfig(**TINY, tasks=("ef",), center_coords=True, coord_scale=10.0)).eval()
    z, coords = [20, 22, 8, 8, 8], np.random.default_rng(0).normal(size=(5, 3)) * 5
    here = model(*padded([z], [coords], [True]))
    moved = model(*padded([z], [coords + np.array([30.0, -12.0, 7.5])], [True]))
    assert torch.allclose(here, moved, atol=1e-5)
    beside_longer = model(*padded([z, list(range(1, 13))], [coords, np.ones((12, 3))], [True, True]))
    assert torch.allclose(here[0], beside_longer[0], atol=1e-5)
    assert CTConfig.from_dict(model.config.to_dict()) == model.config


def test_multitask_loss_masks_missing_targets():
    model = make_model()
    z, coords, has = padded([[3, 8], [11, 17], [12, 8]], [np.zeros((2, 3))] * 3, [False] * 3)
    present = torch.tensor([[True, False], [True, True], [True, False]])
    targets = torch.tensor([[0.5, 0.0], [-1.0, 2.0], [0.1, 0.0]])
    batch = Batch(z, coords, has, targets, present)
    weights = torch.tensor([1.0, 2.0])
    loss = masked_l1(model(z, coords, has), batch, weights)
    # A value behind the mask changes nothing.
    changed = Batch(z, coords, has, targets.clone().index_put_((torch.tensor([0]), torch.tensor([1])),
                                                              torch.tensor(99.0)), present)
    assert torch.equal(loss, masked_l1(model(z, coords, has), changed, weights))
    # Each term is the mean over the samples that have that target, weighted.
    prediction = model(z, coords, has).detach()
    error = (prediction - targets).abs()
    expected = error[:, 0].mean() + 2.0 * error[1, 1]
    assert torch.allclose(loss, expected, atol=1e-6)


def test_flop_estimate_grows_with_depth():
    small = CTConfig(n_layers=3)
    assert forward_flops(CTConfig(), 1000, 16) > 2.5 * forward_flops(small, 1000, 16)


def test_collate_standardises_and_masks_real_samples(mp_samples):
    tasks = discover_tasks(mp_samples, ("ef", "eg"), per_source_heads=True)
    assert tasks == ("ef@mp_compositions", "eg@mp_compositions")
    scaler = TargetScaler.fit(mp_samples, tasks, True)
    batch = collate(mp_samples[:50], scaler, True)
    assert batch.z.shape[0] == 50 and not batch.has_coords.any()
    assert batch.present[:, 0].all()  # every MP composition here has a formation energy
    ef = np.array([s.targets["ef"] for s in mp_samples[:50]])
    assert np.allclose(batch.targets[:, 0].numpy(), (ef - scaler.mean[0]) / scaler.std[0], atol=1e-5)
    missing = ~batch.present[:, 1]
    assert (batch.targets[:, 1][missing] == 0).all()


def test_length_bucketing_cuts_padding_and_covers_every_sample(mp_samples):
    lengths = [len(s.z) for s in mp_samples]
    rng = np.random.default_rng(0)
    batches = bucket_batches(lengths, 32, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    random_batches = np.array_split(rng.permutation(len(lengths)), len(batches))
    assert padding_fraction(lengths, batches) < 0.5 * padding_fraction(lengths, random_batches)


def test_split_keeps_each_formula_in_one_part(mp_samples):
    doubled = mp_samples + mp_samples[:40]  # the same formula twice, as for polymorphs
    splits = split_by_formula(doubled, 0.1, 0.1, seed=0)
    part_of = {}
    for part, indices in splits.items():
        for i in indices:
            assert part_of.setdefault(doubled[i].formula, part) == part
    assert sum(map(len, splits.values())) == len(doubled)
    assert splits == split_by_formula(doubled, 0.1, 0.1, seed=0)


# --- the metal/non-metal target ------------------------------------------------------------------
def test_metal_is_derived_from_eg_at_the_1_mev_threshold_and_only_where_eg_is():
    from ct_plugins.pretrain.targets import METAL_GAP_EV, data_targets, is_binary, target_label

    assert METAL_GAP_EV == 1e-3  # the convention of benchmarks/gap_sets.py
    gaps = {0.0: 1.0, 0.001: 1.0, 0.0011: 0.0, 0.5: 0.0, 2.3: 0.0}
    for gap, metal in gaps.items():
        assert target_label({"eg": gap}, "metal") == metal, gap
    for labels in ({}, {"ef": -1.0}, {"eg": None}, {"eg": float("nan")}, {"metal": 1.0}):
        assert target_label(labels, "metal") is None, labels  # no eg label, no metal label
    assert target_label({"eg": 0.0}, "eg") == 0.0 and target_label({"eg": 0.0}, "ef") is None
    assert data_targets(("ef", "eg", "metal")) == ("ef", "eg") and data_targets(("metal", "ef")) == ("eg", "ef")
    assert is_binary("metal") and is_binary("metal@oqmd") and not is_binary("eg@oqmd")


def test_metal_tasks_follow_the_eg_tasks_and_are_not_standardised(mp_samples):
    from ct_plugins.pretrain.batching import has_target, sample_task_values

    for per_source in (True, False):
        tasks = discover_tasks(mp_samples, ("ef", "eg", "metal"), per_source_heads=per_source)
        suffix = "@mp_compositions" if per_source else ""
        assert tasks == tuple(f"{t}{suffix}" for t in ("ef", "eg", "metal"))
    tasks = discover_tasks(mp_samples, ("ef", "eg", "metal"), per_source_heads=True)
    with_eg = [s for s in mp_samples if has_target(s, "eg")]
    assert [s for s in mp_samples if has_target(s, "metal")] == with_eg
    metals = [s.targets["eg"] <= 1e-3 for s in with_eg]
    assert 0 < sum(metals) < len(metals)  # both classes occur in the test data
    scaler = TargetScaler.fit(mp_samples, tasks, True)
    assert (scaler.mean[2], scaler.std[2]) == (0.0, 1.0) and scaler.std[1] != 1.0
    batch = collate(mp_samples, scaler, True)
    assert torch.equal(batch.present[:, 2], batch.present[:, 1])  # metal exactly where eg
    labels = batch.targets[:, 2][batch.present[:, 2]]
    assert labels.tolist() == [float(m) for m in metals]
    values, present = sample_task_values(with_eg[0], tasks, True)
    assert present[2] and values[2] == float(with_eg[0].targets["eg"] <= 1e-3)


def metal_batch():
    """Three compositions; task columns (ef, metal); sample 1 has no metal label."""
    z, coords, has = padded([[3, 8], [11, 17], [12, 8]], [np.zeros((2, 3))] * 3, [False] * 3)
    present = torch.tensor([[True, True], [True, False], [True, True]])
    targets = torch.tensor([[0.5, 1.0], [-1.0, 0.0], [0.1, 0.0]])
    return Batch(z, coords, has, targets, present)


def test_metal_loss_is_masked_bce_with_its_weight():
    from ct_plugins.pretrain.train import masked_loss

    batch = metal_batch()
    model = make_model(tasks=("ef", "metal"))
    weights, binary = torch.tensor([1.0, 0.5]), torch.tensor([False, True])
    loss = masked_loss(model(batch.z, batch.coords, batch.has_coords), batch, weights, binary)
    prediction = model(batch.z, batch.coords, batch.has_coords).detach()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(prediction[[0, 2], 1], batch.targets[[0, 2], 1])
    expected = (prediction[:, 0] - batch.targets[:, 0]).abs().mean() + 0.5 * bce
    assert torch.allclose(loss, expected, atol=1e-6)
    hidden = Batch(batch.z, batch.coords, batch.has_coords, batch.targets.clone(), batch.present)
    hidden.targets[1, 1] = 1.0  # a label behind the mask changes nothing
    assert torch.equal(loss, masked_loss(model(batch.z, batch.coords, batch.has_coords), hidden, weights, binary))


def test_without_binary_tasks_the_loss_is_exactly_masked_l1():
    from ct_plugins.pretrain.train import masked_loss

    batch = metal_batch()
    weights = torch.tensor([1.0, 2.0])
    grads = []
    for loss_of in (lambda p: masked_l1(p, batch, weights),
                    lambda p: masked_loss(p, batch, weights, torch.tensor([False, False]))):
        model = make_model()
        loss = loss_of(model(batch.z, batch.coords, batch.has_coords))
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))


def test_meters_give_metal_accuracy_and_bce_and_keep_it_out_of_mae_and_the_score():
    from ct_plugins.pretrain.train import TaskMeter, validation_score

    batch = metal_batch()
    scaler = TargetScaler(("ef", "metal"), np.array([0.0, 0.0]), np.array([2.0, 1.0]))
    logits = torch.tensor([[0.5, 3.0], [0.0, 9.0], [0.3, 1.0]])  # metal: sample 0 right, 2 wrong
    meter = TaskMeter(scaler)
    meter.add(logits, batch)
    scores = meter.result()
    assert scores.mae == {"ef": pytest.approx(2.0 * (0.0 + 1.0 + 0.2) / 3)}
    assert scores.accuracy == {"metal": 0.5}
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 0.0]))
    assert scores.bce == {"metal": pytest.approx(float(bce))}
    assert set(scores.fields("val")) == {"val_mae", "val_accuracy", "val_bce"}
    weights = {"ef": 1.0, "metal": 0.5}
    assert validation_score(scores.mae, scaler, weights, scores.bce) == pytest.approx(scores.mae["ef"] / 2.0)
    # A metal-only run still picks a best epoch: by its weighted validation BCE.
    only = TargetScaler(("metal",), np.array([0.0]), np.array([1.0]))
    assert validation_score({}, only, {"metal": 0.5}, {"metal": 0.6}) == pytest.approx(0.3)
    plain = TaskMeter(TargetScaler(("ef",), np.array([0.0]), np.array([2.0])))
    assert plain.result().fields("val") == {"val_mae": {}}  # runs without metal: the keys they had


def test_head_layers_adds_capacity_and_the_default_is_the_v2_head():
    torch.manual_seed(0)
    default = CrystalTransformer(CTConfig(**TINY, tasks=("eg",)))
    assert [k for k in default.state_dict() if k.startswith("heads.")] == [
        "heads.eg.0.weight", "heads.eg.0.bias", "heads.eg.2.weight", "heads.eg.2.bias"]
    deeper = CrystalTransformer(CTConfig(**TINY, tasks=("eg",), head_layers=3))
    extra = sum(p.numel() for p in deeper.heads.parameters()) - sum(p.numel() for p in default.heads.parameters())
    assert extra == 2 * (8 * 8 + 8)
    assert CTConfig.from_dict({k: v for k, v in default.config.to_dict().items() if k != "head_layers"}) == default.config
    with pytest.raises(ValueError, match="head_layers"):
        CTConfig(head_layers=0)
