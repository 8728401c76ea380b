"""Configuration: the grids `earshot run --grid NAME` offers."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

from earshot.benchmark.config import ALL_LOSSES_GRID, ConfigError, load_config, select_grid
from earshot.losses import REGISTRY, Loss, register


@pytest.fixture
def throwaway_loss():
    """A loss registered for one test through the registry's own door, then removed."""

    @register
    class ThrowawayL1(Loss):
        name = "throwaway-l1"
        description = "L1 on samples (registered by a test)"

        def forward(self, head, target):
            return F.l1_loss(head[:, 0], target)

    yield ThrowawayL1.name
    del REGISTRY[ThrowawayL1.name]


def test_all_losses_trains_a_newly_registered_loss(throwaway_loss):
    for preset in ("tiny", "quick", "seed"):
        losses = select_grid(load_config(preset), ALL_LOSSES_GRID).losses
        assert losses == list(REGISTRY)
        assert losses[-1] == throwaway_loss


def test_all_losses_keeps_the_order_runs_were_made_in():
    # The order the presets once listed by hand: same jobs in the same order, same run ids.
    assert select_grid(load_config("quick"), ALL_LOSSES_GRID).losses == [
        "mse", "bark", "bark-norm", "mulaw-ce", "dmol", "mrstft", "mel", "adversarial", "crepe-feature"]


def test_a_preset_names_its_own_grids_beside_all_losses(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("grids:\n  spectral: [mrstft, mel]\n  all-losses: [mse]\n  empty: []\n")
    config = load_config(preset_file=preset)
    assert select_grid(config, "spectral").losses == ["mrstft", "mel"]
    # all-losses is the registry's: a stale hand-written list cannot shadow it.
    assert select_grid(config, ALL_LOSSES_GRID).losses == list(REGISTRY)
    with pytest.raises(ConfigError, match="the grid lists no losses"):
        select_grid(config, "empty")
    with pytest.raises(ConfigError, match=r"unknown grid \(known: all-losses, all-losses\+plugins, empty, spectral\)"):
        select_grid(config, "nope")
