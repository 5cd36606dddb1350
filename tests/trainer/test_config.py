"""The typed config: every shipped config loads; bad keys, types and values are one line naming the key."""

import dataclasses
import pathlib
import subprocess
import sys

import pytest
import yaml

from data.tensorflow_startup import is_startup_line
from trainer import config as config_lib
from trainer import typed_yaml
from trainer.config import ConfigError, load_config
from trainer.model import load_bert_config
from trainer.optimizers import layer_adaptation_exclusions, weight_decay_exclusions

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED_CONFIGS = sorted(path.name for path in (ROOT / "configs").glob("*.yaml"))

MINIMAL = """
model:
  bert_config: tiny
data:
  train_files: /data/*.tfrecord
schedule:
  peak_learning_rate: 1.0e-3
  total_steps: 100
train:
  global_batch_size: 64
  micro_batch_size: 8
"""


def write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def with_values(changes):
    """MINIMAL with `changes` ({"section.key": value}) applied, as YAML text."""
    values = yaml.safe_load(MINIMAL)
    for path, value in changes.items():
        section, key = path.split(".")
        values.setdefault(section, {})[key] = value
    return yaml.safe_dump(values)


def load_error(tmp_path, text, overrides=()):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), overrides)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_shipped_configs_are_the_two_phases_and_the_demo():
    assert SHIPPED_CONFIGS == ["demo.yaml", "phase1.yaml", "phase2.yaml"]


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_every_shipped_config_loads_validates_and_names_a_bert_size_that_exists(name):
    config = load_config(name)
    bert_config = load_bert_config(config.model)
    assert bert_config.max_position_embeddings >= config.data.max_seq_length


def test_phase1_is_the_published_64k_recipe():
    config = load_config("phase1.yaml")
    assert config.model.bert_config == "large"
    assert (config.data.max_seq_length, config.data.max_predictions_per_seq) == (128, 20)
    assert config.train.global_batch_size == 65536
    schedule = config.schedule
    assert (schedule.peak_learning_rate, schedule.warmup_steps, schedule.total_steps) == (6e-3, 2000, 7038)
    assert (schedule.power, schedule.end_learning_rate, schedule.reference_batch_size) == (0.5, 0.0, None)
    optimizer = config.optimizer
    assert optimizer.weight_decay == 0.01
    # LayerNorm and biases: no decay and no trust ratio, by the model's own list (the keys are null)
    assert weight_decay_exclusions(optimizer) == ["LayerNorm", "layer_norm", "bias"]
    assert layer_adaptation_exclusions(optimizer) == ["LayerNorm", "layer_norm", "bias"]
    assert optimizer.clip_global_norm == 1.0
    assert config.model.init_checkpoint is None


def test_phase2_is_the_published_32k_recipe_starting_from_phase1():
    phase1, phase2 = load_config("phase1.yaml"), load_config("phase2.yaml")
    assert phase2.model.bert_config == "large"
    assert (phase2.data.max_seq_length, phase2.data.max_predictions_per_seq) == (512, 80)
    assert phase2.train.global_batch_size == 32768
    schedule = phase2.schedule
    assert (schedule.peak_learning_rate, schedule.warmup_steps, schedule.total_steps) == (4e-3, 200, 1563)
    assert schedule.power == 0.5
    assert phase2.optimizer == phase1.optimizer
    # Initialised from phase 1's final checkpoint (model weights only), in a model_dir of its own.
    assert phase2.model.init_checkpoint == phase1.runtime.model_dir
    assert phase2.runtime.model_dir != phase1.runtime.model_dir


def test_yaml_exponents_without_a_dot_are_floats(tmp_path):
    config = load_config(write(tmp_path, MINIMAL.replace("1.0e-3", "6e-3")))
    assert config.schedule.peak_learning_rate == 6e-3


def test_sections_with_only_defaults_may_be_left_out(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.optimizer == config_lib.OptimizerConfig()
    assert config.runtime.strategy == "auto"


def test_a_misspelt_key_names_the_key_and_suggests_the_right_one(tmp_path):
    message = load_error(tmp_path, MINIMAL + "optimizer:\n  weight_dacay: 0.01\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: optimizer.weight_dacay: unknown key")
    assert "did you mean weight_decay?" in message


def test_an_unknown_section_is_an_error(tmp_path):
    assert "trian: unknown key; did you mean train?" in load_error(tmp_path, MINIMAL + "trian: {}\n")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"train.steps_per_loop": 2.5}, "train.steps_per_loop: expected an integer, got 2.5"),
        ({"train.steps_per_loop": True}, "train.steps_per_loop: expected an integer, got True"),
        ({"runtime.jit_compile": 1}, "runtime.jit_compile: expected true or false, got 1"),
        ({"runtime.strategy": "gpu"}, "runtime.strategy: expected one of auto, one_device, mirrored"),
        ({"optimizer.name": "adam"}, "optimizer.name: expected one of lamb, adamw, got 'adam'"),
        ({"optimizer.exclude_from_weight_decay": "bias"}, "expected a list of strings or null, got 'bias'"),
        ({"optimizer.beta_1": 1.0}, "optimizer.beta_1: expected a number in [0, 1), got 1.0"),
        ({"optimizer.epsilon": 0}, "optimizer.epsilon: expected a number > 0.0, got 0.0"),
        (
            {"optimizer.exclude_from_weight_decay": ["("]},
            "optimizer.exclude_from_weight_decay: expected a list",
        ),
        (
            {"optimizer.trust_ratio_bounds": [2, 1]},
            "optimizer.trust_ratio_bounds: expected [minimum, maximum]",
        ),
        ({"runtime.model_dir": ""}, "runtime.model_dir: expected a non-empty string"),
        ({"data.train_files": ["a", " "]}, "data.train_files: expected globs or directories, none empty"),
        ({"data.verify": "all"}, "data.verify: expected one of size, full, got 'all'"),
    ],
)
def test_wrong_types_and_bad_values_name_the_key_and_the_expected_form(tmp_path, changes, expected):
    assert expected in load_error(tmp_path, with_values(changes))


def test_a_missing_required_key_is_named(tmp_path):
    message = load_error(tmp_path, MINIMAL.replace("  total_steps: 100\n", ""))
    assert "schedule.total_steps: missing (expected an integer)" in message


def test_a_duplicate_key_is_an_error_not_a_silent_override(tmp_path):
    message = load_error(
        tmp_path, MINIMAL.replace("  total_steps: 100\n", "  total_steps: 100\n  total_steps: 5\n")
    )
    assert "key 'total_steps' appears twice" in message


def test_invalid_yaml_is_one_line_with_the_position(tmp_path):
    message = load_error(tmp_path, MINIMAL + "runtime: [unclosed\n")
    assert "not valid YAML at line" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"data.max_seq_length": 8, "data.max_predictions_per_seq": 9},
            "at most data.max_seq_length (8), got 9",
        ),
        (
            {"train.global_batch_size": 60},
            "train.global_batch_size: expected a multiple of train.micro_batch_size",
        ),
        (
            {"train.steps_per_loop": 3},
            "train.log_every_steps: expected a multiple of train.steps_per_loop (3)",
        ),
        ({"schedule.end_learning_rate": 0.1}, "schedule.end_learning_rate: expected at most"),
        (
            {"runtime.tpu": "my-tpu", "runtime.strategy": "mirrored"},
            "runtime.tpu: only used with runtime.strate",
        ),
        (
            {"optimizer.name": "adamw", "optimizer.trust_ratio_bounds": [0.0, 10.0]},
            "optimizer.trust_ratio_bounds: LAMB only (AdamW has no trust ratio)",
        ),
        (
            {"optimizer.name": "adamw", "optimizer.bias_correction": False},
            "optimizer.bias_correction: AdamW always corrects its moments",
        ),
    ],
)
def test_keys_are_checked_against_each_other(tmp_path, changes, expected):
    assert expected in load_error(tmp_path, with_values(changes))


def test_overrides_are_typed_by_the_schema(tmp_path):
    config = load_config(
        write(tmp_path, MINIMAL),
        [
            "schedule.peak_learning_rate=4e-3",
            "schedule.power=1",
            "train.max_steps=10",
            "runtime.jit_compile=true",
            "optimizer.exclude_from_weight_decay=[bias]",
            "optimizer.trust_ratio_bounds=[0, 10]",
            "model.init_checkpoint=2024",
            "runtime.tpu=null",
            "data.train_files=[/a/*.tfrecord, gs://b/c]",
            "data.eval_files=gs://b/held-out-*.tfrecord",
        ],
    )
    assert config.schedule.peak_learning_rate == 4e-3
    assert config.schedule.power == 1.0 and isinstance(config.schedule.power, float)
    assert config.train.max_steps == 10
    assert config.runtime.jit_compile is True
    assert config.optimizer.exclude_from_weight_decay == ["bias"]
    assert config.optimizer.trust_ratio_bounds == [0.0, 10.0]
    assert config.model.init_checkpoint == "2024"  # a path, even when it looks like a number
    assert config.runtime.tpu is None
    assert config.data.train_files == ["/a/*.tfrecord", "gs://b/c"]
    assert config.data.eval_files == ["gs://b/held-out-*.tfrecord"]  # one string is a list of one


def test_the_last_override_of_a_key_wins(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["train.seed=1", "train.seed=2"])
    assert config.train.seed == 2


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "optimizer.weight_dacay=0.1",
            "--set: optimizer.weight_dacay: unknown key; did you mean weight_decay?",
        ),
        ("train.global_batch_size=1.5", "--set: train.global_batch_size: expected an integer, got 1.5"),
        ("train.seed=null", "--set: train.seed: expected an integer, got null"),
        ("seed=1", "--set: 'seed=1': expected section.key=value"),
        ("train.seed", "--set: 'train.seed': expected section.key=value"),
        ("train.seed.x=1", "--set: train.seed: is a key, not a section"),
        ("schedule.warmup_steps=1000", "schedule.warmup_steps: expected at most schedule.total_steps (100)"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path, override, expected):
    assert expected in load_error(tmp_path, MINIMAL, [override])


def test_a_config_name_is_looked_up_in_configs(tmp_path):
    assert (
        load_config("phase1") == load_config("phase1.yaml") == load_config(str(ROOT / "configs/phase1.yaml"))
    )
    with pytest.raises(ConfigError, match="--config: no config file 'phase3.yaml'"):
        load_config("phase3.yaml")


def test_the_written_config_loads_back_to_the_same_config(tmp_path):
    config = load_config("phase2.yaml", ["data.dynamic_masking=true", "train.max_steps=5"])
    assert load_config(write(tmp_path, typed_yaml.to_yaml(config))) == config


def test_the_key_table_documents_every_key():
    config = load_config("phase1.yaml", ["data.masked_lm_prob=0.15"])
    documented = {row[0] for row in config_lib.key_table()}
    assert set(typed_yaml.flatten(dataclasses.asdict(config))) <= documented
    for name, form, default, help in config_lib.key_table():
        assert form and default and help, name
    assert "| `optimizer.weight_decay` | a number | `0.01` |" in config_lib.markdown_key_table()


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "run_pretraining.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},  # a user's shell: no TF_CPP_MIN_LOG_LEVEL
    )


@pytest.mark.parametrize(
    ("flags", "message", "only_line"),
    [
        (
            ["--config=phase1.yaml", "--set=optimizer.weight_dacay=0.1"],
            "run_pretraining.py: error: --set: optimizer.weight_dacay: unknown key; "
            "did you mean weight_decay? (expected one of: name, beta_1, beta_2, epsilon, weight_decay, "
            "exclude_from_weight_decay, exclude_from_layer_adaptation, bias_correction, trust_ratio_bounds, "
            "clip_global_norm)",
            True,
        ),
        (
            [
                "--config=phase1.yaml",
                "--set=model.bert_config=tiny",
                "--set=data.train_files=/nowhere/*.tfrecord",
            ],
            "run_pretraining.py: error: data.train_files: no TFRecord file matches /nowhere/*.tfrecord "
            "(make the data first: python -m data.create_pretraining_data; for the demo, make demo-data)",
            False,  # found after the run logged its set-up (strategy, config)
        ),
    ],
    ids=["config", "data"],
)
def test_the_command_line_reports_bad_input_as_one_line_and_exit_code_2(tmp_path, flags, message, only_line):
    result = run_cli(*flags, f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[-1] == message
    assert "Traceback" not in result.stderr
    # TensorFlow's C++ start-up lines are kept off stderr.
    assert not [line for line in lines if is_startup_line(line)]
    if only_line:
        assert lines == [message]
    assert not (tmp_path / "run").exists() or list((tmp_path / "run").iterdir()) == []  # nothing written
