"""docs/finetuning.md shows the config keys the code has, and the configs of configs/finetune/ all load."""

import pathlib

import pytest

import finetune
from finetune import config as config_lib

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_the_key_table_in_the_docs_is_the_schema():
    assert config_lib.markdown_key_table() in (REPO / "docs" / "finetuning.md").read_text()


@pytest.mark.parametrize("name", ["mrpc", "sst2", "mnli", "squad_v1.1", "demo_library"])
def test_every_shipped_config_loads_with_the_published_recipe(name):
    config = finetune.load_config(f"{name}.yaml", ["model.init_checkpoint=some/export"])
    assert config.optimizer.name == "adamw" and config.optimizer.weight_decay == 0.01
    assert config.schedule.warmup_proportion == 0.1
    if name != "demo_library":
        assert (config.train.batch_size, config.schedule.epochs) == (32, 3)
        expected = 5e-5 if name == "squad_v1.1" else 2e-5
        assert config.schedule.peak_learning_rate == expected
