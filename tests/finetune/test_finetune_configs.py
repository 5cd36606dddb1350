"""The configs of configs/finetune/ all load with the published recipes (docs/finetuning.md's key table is
checked with the other generated tables, tests/test_docs.py)."""

import pathlib

import pytest

import finetune

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["mrpc", "sst2", "mnli", "squad_v1.1", "demo_library"])
def test_every_shipped_config_loads_with_the_published_recipe(name):
    config = finetune.load_config(f"{name}.yaml", ["model.init_checkpoint=some/export"])
    assert config.optimizer.name == "adamw" and config.optimizer.weight_decay == 0.01
    assert config.schedule.warmup_proportion == 0.1
    if name != "demo_library":
        assert (config.train.batch_size, config.schedule.epochs) == (32, 3)
        expected = 5e-5 if name == "squad_v1.1" else 2e-5
        assert config.schedule.peak_learning_rate == expected


def test_a_later_config_file_overrides_the_keys_it_sets(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("train:\n  batch_size: 8\noptimizer:\n  name: lamb\n")
    config = finetune.load_config(["mrpc.yaml", str(overlay)], ["model.init_checkpoint=some/export"])
    assert (config.train.batch_size, config.optimizer.name) == (8, "lamb")  # the overlay's
    assert config.schedule.peak_learning_rate == 2e-5  # mrpc.yaml's, untouched
