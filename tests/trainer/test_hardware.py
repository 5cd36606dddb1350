"""Hardware overlays and --mode=plan: layered configs, every phase x overlay planned, the overlays' stated
arithmetic and memory checked against trainer/memory.py."""

import pathlib
import re

import pytest
import tensorflow as tf
import yaml
from test_config import run_cli

from trainer import memory
from trainer.config import ConfigError, load_config
from trainer.model import load_bert_config
from trainer.plan import describe_plan, overlays_table, plan_batches

ROOT = pathlib.Path(__file__).resolve().parents[2]
OVERLAYS = sorted(path.name for path in (ROOT / "configs" / "hardware").glob("*.yaml"))
ACCELERATORS = [name for name in OVERLAYS if name != "cpu.yaml"]
PHASES = {"phase1.yaml": "phase 1", "phase2.yaml": "phase 2"}


def test_the_overlays_are_the_issue_list():
    assert OVERLAYS == [
        "a100-80g-x8.yaml",
        "cpu.yaml",
        "h100-80g-x8.yaml",
        "tpu-v3-1024.yaml",
        "tpu-v4-128.yaml",
        "tpu-v5e-256.yaml",
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_an_overlay_states_replicas_precision_and_steps_per_loop(overlay):
    values = yaml.safe_load((ROOT / "configs" / "hardware" / overlay).read_text())
    assert isinstance(values["runtime"]["num_replicas"], int)
    assert values["runtime"]["mixed_precision"] in ("float32", "mixed_bfloat16")
    assert isinstance(values["train"]["steps_per_loop"], int)
    assert isinstance(values["train"]["micro_batch_size"], int)


def overlay_comment_numbers(overlay):
    """{"phase 1": (micro, replicas, accumulation, GiB), "phase 2": ...}, as the overlay comment says."""
    text = (ROOT / "configs" / "hardware" / overlay).read_text()
    batches = dict(
        (f"phase {phase}", (int(micro), int(replicas), int(accumulation)))
        for phase, _, micro, replicas, accumulation in re.findall(
            r"phase (\d): (\d+) = (\d+) x (\d+) x (\d+)", text
        )
    )
    gib = {f"phase {phase}": float(value) for phase, value in re.findall(r"phase (\d): ([\d.]+) GiB", text)}
    return {phase: (*batches[phase], gib[phase]) for phase in ("phase 1", "phase 2")}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("phase", sorted(PHASES))
def test_the_overlay_comment_states_the_plan_and_the_estimate(phase, overlay):
    config = load_config([phase, f"hardware/{overlay}"])
    batches = plan_batches(
        config.train.global_batch_size, config.train.micro_batch_size, config.runtime.num_replicas
    )
    estimate = memory.estimate_memory(
        load_bert_config(config.model),
        batches.micro_batch_size,
        batches.accumulation_steps,
        config.data.max_seq_length,
        config.data.max_predictions_per_seq,
        config.runtime.mixed_precision,
    )
    micro, replicas, accumulation, gib = overlay_comment_numbers(overlay)[PHASES[phase]]
    assert (micro, replicas, accumulation) == (
        batches.micro_batch_size,
        batches.num_replicas,
        batches.accumulation_steps,
    )
    assert gib == round(estimate.total / memory.GIB, 1)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("phase", sorted(PHASES))
def test_every_phase_and_overlay_plans(phase, overlay):
    config = load_config([phase, f"hardware/{overlay}"])
    lines = describe_plan(config)
    text = "\n".join(lines)
    replicas = config.runtime.num_replicas
    assert f"x {replicas} replica(s) x " in text
    assert (
        f"{config.train.steps_per_loop} optimizer step(s) per loop call, {config.runtime.mixed_precision}"
        in text
    )
    assert "learning rate: linear warmup" in text
    assert re.search(r"memory of one replica \(estimate\): [\d.]+ GiB = ", text)
    assert re.search(r"checkpoint: 3\.7\d GiB", text)  # BERT-Large: 12 bytes x 336M parameters
    if overlay in ACCELERATORS:
        assert "device memory: fits:" in text, text
    else:
        assert "runtime.device_memory_gib is null, not compared" in text


def test_a_micro_batch_too_large_for_the_device_is_flagged():
    config = load_config(["phase2.yaml", "hardware/tpu-v3-1024.yaml"], ["train.micro_batch_size=8"])
    assert "device memory: does NOT fit: 104% of 16 GiB" in "\n".join(describe_plan(config))


def test_later_config_files_override_earlier_ones_then_set(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text((ROOT / "configs" / "phase1.yaml").read_text())
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("train:\n  micro_batch_size: 16\ndata:\n  shuffle_buffer: 300\n")
    second = tmp_path / "second.yaml"
    second.write_text("train:\n  seed: 3\ndata:\n  seed: 7\n")
    config = load_config([str(base), str(overlay), str(second)], ["train.seed=4"])
    assert config.train.micro_batch_size == 16  # the overlay's
    assert config.train.global_batch_size == 65536  # the base's, in the same section
    assert config.train.seed == 4  # --set last
    assert (config.data.shuffle_buffer, config.data.seed) == (300, 7)  # sections merge key by key
    assert config.data.max_seq_length == 128


def test_an_error_names_the_file_that_set_the_key(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("train:\n  micro_batch_size: 3\n")
    with pytest.raises(ConfigError) as error:
        load_config(["phase1.yaml", str(overlay)])
    # The message names the key it checks; global_batch_size was set by the phase file.
    assert str(error.value) == (
        f"{ROOT / 'configs' / 'phase1.yaml'}: train.global_batch_size: expected a multiple of "
        "train.micro_batch_size (3), got 65536"
    )
    overlay.write_text("runtime:\n  num_replicas: 3\n")
    with pytest.raises(
        ConfigError, match=rf"^{overlay}: runtime.num_replicas: train.global_batch_size \(65536\)"
    ):
        load_config(["phase1.yaml", str(overlay)])


def test_a_config_of_binary_bytes_is_one_line(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(128, 256)))
    with pytest.raises(
        ConfigError, match=rf"^{path}: not a text file \(byte 0 is not UTF-8\); expected a YAML"
    ):
        load_config(str(path))


def test_a_model_dir_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "a_file"
    file.write_text("")
    with pytest.raises(
        ConfigError, match=rf"^--set: runtime.model_dir: {file} is an existing file; expected"
    ):
        load_config("phase1.yaml", [f"runtime.model_dir={file}"])
    assert load_config("phase1.yaml", [f"runtime.model_dir={tmp_path}"]).runtime.model_dir == str(tmp_path)


def test_the_command_line_plans_with_an_overlay_without_making_a_strategy():
    result = run_cli("--config=phase1.yaml", "--config=hardware/tpu-v3-1024.yaml", "--mode=plan")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  runtime.num_replicas = 1024" in out and "  train.micro_batch_size = 4" in out
    assert "batches: global batch 65536 = micro-batch 4 x 1024 replica(s) x 16 accumulation step(s)" in out
    assert "device memory: fits: 47% of 16 GiB" in out
    assert "strategy" not in result.stderr  # no strategy was made


def test_the_command_line_reports_a_binary_config_and_a_file_model_dir_as_one_line(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00model")
    result = run_cli(f"--config={binary}", "--mode=plan")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"run_pretraining.py: error: {binary}: not a text file (byte 0 is not UTF-8); expected a YAML config"
    ]
    file = tmp_path / "file"
    file.write_text("x")
    result = run_cli("--config=demo.yaml", f"--model_dir={file}")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        f"run_pretraining.py: error: --set: runtime.model_dir: {file} is an existing file"
    )
    assert "Traceback" not in result.stderr


def test_the_overlays_table_of_docs_hardware_is_the_generated_one():
    page = (ROOT / "docs" / "hardware.md").read_text()
    start = page.index("<!-- overlays table: generated by trainer.plan.overlays_table -->\n")
    start = page.index("\n", start) + 1
    end = page.index("\n<!-- end of the overlays table -->")
    assert page[start:end] == overlays_table([f"hardware/{name}" for name in OVERLAYS])


@pytest.mark.skipif(
    not tf.test.is_built_with_cuda() or bool(tf.config.list_physical_devices("GPU")),
    reason="needs a TensorFlow built with CUDA on a host where it sees no GPU (as the test machine is)",
)
def test_bert_large_on_a_cuda_build_without_gpus_is_refused_showing_tensorflows_cuda_messages(tmp_path):
    result = run_cli("--config=phase1.yaml", f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(
        "run_pretraining.py: error: TensorFlow is built with CUDA but sees no GPU, and a "
        "336,226,108-parameter model would train on the CPU"
    )
    assert any("cuInit" in line or "cuda" in line.lower() for line in lines[:-1])  # TensorFlow's own words
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
