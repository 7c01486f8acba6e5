"""Augmentations keep the crystal: checked with pymatgen's StructureMatcher on real structures."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from ct_plugins.pretrain.augment import (
    AugmentConfig,
    Augmenter,
    lattice_translation,
    point_group_rotation,
    random_rotation,
    reflection,
    symmetry_operations,
    uniform_rotation,
)
from ct_plugins.pretrain.compositions import composition_sample
from ct_plugins.pretrain.corpus import CMR_TARGETS, OQMD_TARGETS
from ct_plugins.pretrain.structure_files import structure_samples
from ct_plugins.pretrain.structures import sample_from_structure, structure_from_text, to_structure

from conftest import DATA

AUGMENTATIONS = [lattice_translation, point_group_rotation, random_rotation, reflection]


@pytest.fixture(scope="module")
def crystals():
    """Cubic perovskites (OQMD, CMR) and low-symmetry JARVIS crystals with more atoms."""
    oqmd = structure_samples(DATA / "oqmd_perovskites_sample.jsonl.gz", OQMD_TARGETS, cache=False,
                             workers=1, progress=False)[:4]
    cmr = structure_samples(DATA / "cmr_perovskites_sample.jsonl.gz", CMR_TARGETS, per_cell=("ef",),
                            cache=False, workers=1, progress=False)[:2]
    poscars = sorted((DATA / "jarvis_sample").glob("*.vasp"), key=lambda p: p.stat().st_size)[-4:]
    jarvis = [sample_from_structure(structure_from_text(p.read_text(), "poscar"), id=p.stem, source="jarvis")
              for p in poscars]
    return oqmd + cmr + jarvis


def site_mapping(lattice: np.ndarray, z: np.ndarray, coords: np.ndarray, new_z, new_coords, tol=0.05) -> list[int]:
    """For each new atom, the original atom of the same element at the same place (modulo the
    lattice, within ``tol`` Å); fails unless that is a one-to-one mapping."""
    lattice = np.asarray(lattice, float)
    inverse = np.linalg.inv(lattice)
    mapping = []
    for element, xyz in zip(new_z, np.asarray(new_coords, float)):
        delta = (np.asarray(coords, float) - xyz) @ inverse
        distance = np.linalg.norm((delta - np.round(delta)) @ lattice, axis=1)
        distance[np.asarray(z) != element] = np.inf
        assert distance.min() < tol, f"no atom of Z={element} within {tol} Å (closest {distance.min():.3f} Å)"
        mapping.append(int(distance.argmin()))
    assert sorted(mapping) == list(range(len(z)))
    return mapping


@pytest.mark.parametrize("augment", AUGMENTATIONS, ids=lambda f: f.__name__)
def test_augmentation_gives_the_same_crystal(crystals, augment):
    matcher = StructureMatcher()
    rng = np.random.default_rng(0)
    for sample in crystals:
        new = augment(sample, rng)
        assert new is not sample and new.id == sample.id and new.targets == sample.targets
        assert new.z.tolist() == sample.z.tolist()
        assert new.coords.dtype == np.float32 and new.lattice.dtype == np.float32
        assert matcher.fit(to_structure(sample), to_structure(new)), (augment.__name__, sample.id)


def test_point_group_operations_map_the_structure_onto_itself(crystals):
    """Every space-group operation leaves the crystal in place: same sites in the same lattice."""
    for sample in crystals:
        ops = symmetry_operations(sample)
        assert len(ops) == len(SpacegroupAnalyzer(to_structure(sample), symprec=0.01).get_symmetry_operations())
        for index in range(len(ops)):
            new = point_group_rotation(sample, FixedChoice(index), ops)
            change = np.linalg.solve(sample.lattice.T.astype(float), new.lattice.T.astype(float))
            np.testing.assert_allclose(change, np.round(change), atol=1e-3)  # same lattice, other basis
            assert abs(abs(np.linalg.det(np.round(change))) - 1) < 1e-9
            site_mapping(sample.lattice, sample.z, sample.coords, new.z, new.coords)


class FixedChoice:
    """A stand-in Generator whose integers() picks a given operation."""

    def __init__(self, index: int) -> None:
        self.index = index

    def integers(self, n: int) -> int:
        return self.index


def test_cubic_perovskite_has_the_full_cubic_point_group(crystals):
    cmr = next(s for s in crystals if s.source == "cmr")
    assert len(symmetry_operations(cmr)) == 48  # Pm-3m


def test_lattice_translation_moves_atoms_by_lattice_vectors(crystals):
    sample = crystals[-1]
    new = lattice_translation(sample, np.random.default_rng(1), max_shift=2)
    steps = (new.coords.astype(float) - sample.coords) @ np.linalg.inv(sample.lattice.astype(float))
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert np.abs(np.round(steps)).max() <= 2 and np.abs(np.round(steps)).sum() > 0
    np.testing.assert_array_equal(new.lattice, sample.lattice)
    shared = lattice_translation(sample, np.random.default_rng(1), per_atom=False)
    moves = shared.coords - sample.coords
    np.testing.assert_allclose(moves, np.broadcast_to(moves[0], moves.shape), atol=1e-4)


def test_rotation_and_reflection_are_rigid(crystals):
    sample = crystals[-1]
    rng = np.random.default_rng(2)
    rotated, mirrored = random_rotation(sample, rng), reflection(sample, rng)
    for new, handedness in ((rotated, 1), (mirrored, -1)):
        for before, after in ((sample.coords, new.coords), (sample.lattice, new.lattice)):
            gram_before = before.astype(float) @ before.T.astype(float)
            np.testing.assert_allclose(after.astype(float) @ after.T.astype(float), gram_before, atol=1e-3)
        ratio = np.linalg.det(new.lattice.astype(float)) / np.linalg.det(sample.lattice.astype(float))
        assert ratio == pytest.approx(handedness, abs=1e-4)


def test_uniform_rotation_is_a_proper_rotation():
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = uniform_rotation(rng)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_augmenter_passes_compositions_and_is_reproducible(crystals):
    augmenter = Augmenter(AugmentConfig(point_group=1, translation=1, rotation=1, reflection=0.5))
    composition = composition_sample("Fe2O3", {"ef": -1.0})
    assert augmenter(composition, np.random.default_rng(0)) is composition
    sample = crystals[0]
    a = augmenter(sample, np.random.default_rng(5))
    b = Augmenter(augmenter.config)(sample, np.random.default_rng(5))
    np.testing.assert_array_equal(a.coords, b.coords)
    assert StructureMatcher().fit(to_structure(sample), to_structure(a))
    assert Augmenter(AugmentConfig(0, 0, 0, 0))(sample, np.random.default_rng(0)) is sample


def test_augmenter_caches_symmetry_per_sample_and_bounds_the_cache(crystals):
    augmenter = Augmenter(AugmentConfig(point_group=1, translation=0, rotation=0, cache_size=2))
    rng = np.random.default_rng(0)
    for sample in crystals[:3]:
        augmenter(sample, rng)
    assert len(augmenter._ops) == 2


def test_compositions_cannot_be_moved():
    with pytest.raises(ValueError, match="composition"):
        random_rotation(composition_sample("NaCl", {}), np.random.default_rng(0))
