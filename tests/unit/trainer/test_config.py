"""Training config: YAML + overrides into a typed dataclass."""

from __future__ import annotations

import pytest

from trainer.config import TrainConfig, load_config


def test_overrides_apply_with_yaml_types_and_reach_into_the_model(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 10\nrecipe: ts\nmodel:\n  n_mels: 48\n")
    cfg = load_config(path, ["steps=25", "lr=0.01", "model.channels=[8, 16, 16, 16]"])
    assert (cfg.steps, cfg.recipe, cfg.lr) == (25, "ts", 0.01)
    assert cfg.model.n_mels == 48 and cfg.model.channels == (8, 16, 16, 16)


def test_unknown_keys_and_malformed_overrides_are_named():
    with pytest.raises(ValueError, match=r"unknown config keys \['stepz'\]"):
        load_config(None, ["stepz=3"])
    with pytest.raises(ValueError, match=r"unknown model keys \['mels'\]"):
        load_config(None, ["model.mels=3"])
    with pytest.raises(ValueError, match="not of the form key=value"):
        load_config(None, ["steps"])


def test_a_config_survives_the_round_trip_through_plain_data():
    cfg = load_config(None, ["recipe=ps", "model.embedding_dim=64"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_the_shipped_configs_load_and_name_known_recipes():
    from pathlib import Path

    from trainer.augment import load_recipes

    folder = Path(__file__).resolve().parents[3] / "trainer" / "configs"
    configs = [p for p in folder.glob("*.yaml") if p.name != "recipes.yaml"]
    assert configs
    for path in configs:
        cfg = load_config(path, ["corpus=x"])
        assert cfg.recipe in load_recipes()
        assert cfg.model.window_samples == 48000
