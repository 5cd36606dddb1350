"""scripts/experiments/batch_scaling.py: the large-batch experiment, in its --quick form.

The quick run builds its data from every 8th document of the embedded corpus (1000-token vocabulary), then
pretrains BERT-tiny with LAMB and AdamW at batch 32 and 256 (4 accumulation steps of 64) for 2 epochs each,
the batch-256 schedules rescaled from the batch-32 recipe by the paper's rules. The checks recompute those
rules from the data's meta.json with plain arithmetic.
"""

import csv
import importlib.util
import json
import math
import pathlib
import struct
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "experiments" / "batch_scaling.py"

QUICK_BATCHES = (32, 256)
QUICK_EPOCHS = 2
REFERENCE_BATCH = 32
REFERENCE_LR = {"lamb": 1e-2, "adamw": 2e-3}
REFERENCE_WARMUP = 2
MICRO_BATCH = 64


def load_script():
    spec = importlib.util.spec_from_file_location("batch_scaling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("batch_scaling_out")
    work_dir = tmp_path_factory.mktemp("batch_scaling_work")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", f"--out_dir={out_dir}", f"--work_dir={work_dir}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((work_dir / "data" / "meta.json").read_text())
    return {
        "out_dir": out_dir,
        "work_dir": work_dir,
        "stdout": result.stdout,
        "rows": read_csv(out_dir / "batch_scaling.csv"),
        "curves": read_csv(out_dir / "batch_scaling_curves.csv"),
        "meta": meta,
        "train_sequences": sum(shard["num_instances"] for shard in meta["shards"][:-1]),
    }


def test_every_optimizer_ran_at_every_batch_size(quick_run):
    rows = quick_run["rows"]
    assert [(r["optimizer"], int(r["batch_size"])) for r in rows] == [
        (o, b) for o in ("lamb", "adamw") for b in QUICK_BATCHES
    ]
    assert list(rows[0]) == [
        "optimizer",
        "batch_size",
        "micro_batch_size",
        "accumulation_steps",
        "peak_learning_rate",
        "warmup_steps",
        "total_steps",
        "epochs",
        "train_masked_lm_loss",
        "heldout_masked_lm_loss",
        "heldout_masked_lm_accuracy",
        "heldout_next_sentence_accuracy",
        "wall_seconds",
    ]
    for row in rows:
        assert float(row["wall_seconds"]) > 0
        assert 0.0 <= float(row["heldout_masked_lm_accuracy"]) <= 1.0
        assert 0.0 <= float(row["heldout_next_sentence_accuracy"]) <= 1.0


def test_data_is_the_embedded_corpus_with_one_held_out_shard(quick_run):
    meta = quick_run["meta"]
    assert meta["corpus"].startswith("every 8th document of embedded:")
    assert (meta["max_seq_length"], meta["max_predictions_per_seq"], meta["num_shards"]) == (64, 10, 4)
    assert quick_run["train_sequences"] == meta["num_instances"] - meta["shards"][3]["num_instances"] > 1000


def test_schedules_follow_square_root_scaling_and_linear_epoch_warmup(quick_run):
    n = quick_run["train_sequences"]
    reference_steps = math.ceil(QUICK_EPOCHS * n / REFERENCE_BATCH)
    for row in quick_run["rows"]:
        batch = int(row["batch_size"])
        k = batch / REFERENCE_BATCH
        assert float(row["peak_learning_rate"]) == pytest.approx(
            REFERENCE_LR[row["optimizer"]] * math.sqrt(k)
        )
        assert int(row["warmup_steps"]) == REFERENCE_WARMUP  # the same steps: k times more epochs
        steps = int(row["total_steps"])
        assert steps == math.ceil(reference_steps / k)
        assert float(row["epochs"]) == pytest.approx(steps * batch / n, abs=1e-4)
        assert QUICK_EPOCHS <= steps * batch / n < QUICK_EPOCHS + 2 * batch / n  # fixed epochs, rounded up
        micro = min(batch, MICRO_BATCH)
        assert (int(row["micro_batch_size"]), int(row["accumulation_steps"])) == (micro, batch // micro)
    by_batch = {int(r["batch_size"]): int(r["total_steps"]) for r in quick_run["rows"]}
    assert by_batch[256] * 8 >= by_batch[32] > by_batch[256] * 7  # 8 times fewer updates


def test_training_reduced_the_masked_lm_loss(quick_run):
    uniform = math.log(quick_run["meta"]["vocab_size"])  # the loss of a uniform guess over the vocabulary
    curves = quick_run["curves"]
    for row in quick_run["rows"]:
        points = [
            c for c in curves if (c["optimizer"], c["batch_size"]) == (row["optimizer"], row["batch_size"])
        ]
        first, last = float(points[0]["train_masked_lm_loss"]), float(points[-1]["train_masked_lm_loss"])
        assert first > uniform - 0.3  # a fresh model predicts about uniformly
        assert last < first - 0.7, row
        assert float(row["train_masked_lm_loss"]) == last
        assert float(row["heldout_masked_lm_loss"]) < uniform - 0.7, row


def test_loss_curves_cover_each_run_to_its_last_step(quick_run):
    n = quick_run["train_sequences"]
    for row in quick_run["rows"]:
        batch = int(row["batch_size"])
        points = [
            c
            for c in quick_run["curves"]
            if (c["optimizer"], int(c["batch_size"])) == (row["optimizer"], batch)
        ]
        steps = [int(c["step"]) for c in points]
        assert steps == sorted(set(steps)) and steps[0] >= 1
        assert steps[-1] == int(row["total_steps"])
        assert 5 <= len(steps) <= 41
        for c in points:
            assert float(c["epoch"]) == pytest.approx(int(c["step"]) * batch / n, abs=1e-4)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def test_plots_are_pngs_with_two_panels(quick_run):
    out_dir = quick_run["out_dir"]
    for name in ("batch_scaling_final_loss.png", "batch_scaling_curves.png"):
        width, height = png_size(out_dir / name)
        assert width > 1.8 * height > 600, name  # two panels side by side
    assert not list(out_dir.glob("*.tmp"))


def test_report_holds_the_table_and_the_command(quick_run):
    report = (quick_run["out_dir"] / "batch_scaling.md").read_text()
    assert "python scripts/experiments/batch_scaling.py --quick" in report
    for row in quick_run["rows"]:
        title = {"lamb": "LAMB", "adamw": "AdamW"}[row["optimizer"]]
        assert f"| {title} | {row['batch_size']} |" in report
        assert row["heldout_masked_lm_loss"] in report
    for line in report.splitlines():
        assert "nan" not in line.lower().split("|")


def test_a_batch_too_large_for_the_warmup_is_refused_before_training(quick_run, capsys):
    # 2 epochs of the quick data at batch 65536 is 1 update, fewer than the 2 warmup steps.
    work_dir = quick_run["work_dir"]
    code = load_script().main(["--quick", "--batch_sizes=32,65536", f"--work_dir={work_dir}"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "65536" in err[0] and "warmup" in err[0]
    assert not (work_dir / "runs" / "lamb-b65536-lr0.01").exists()


def test_cached_data_of_other_settings_is_refused(quick_run):
    script = load_script()
    other = script.dataclasses.replace(script.QUICK, vocab_size=2000)
    with pytest.raises(script.ExperimentError, match="vocab_size.*'1000'.*'2000'.*delete"):
        script.ensure_data(str(quick_run["work_dir"] / "data"), other)


def test_best_learning_rate_is_the_lowest_held_out_loss():
    rows = [
        {"optimizer": "lamb", "peak_learning_rate": "0.005", "heldout_masked_lm_loss": "5.10"},
        {"optimizer": "lamb", "peak_learning_rate": "0.01", "heldout_masked_lm_loss": "4.90"},
        {"optimizer": "lamb", "peak_learning_rate": "0.02", "heldout_masked_lm_loss": "4.95"},
        {"optimizer": "adamw", "peak_learning_rate": "0.001", "heldout_masked_lm_loss": "4.80"},
        {"optimizer": "adamw", "peak_learning_rate": "0.002", "heldout_masked_lm_loss": "10.0"},
    ]
    assert load_script().best_learning_rates(rows) == {"lamb": 0.01, "adamw": 0.001}


@pytest.mark.parametrize(
    "argument",
    ["--batch_sizes=0,64", "--batch_sizes=96", "--epochs=-2", "--optimizers=lamb,sgd", "--lamb_lr=abc"],
)
def test_bad_arguments_are_one_line_and_exit_code_2(argument, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script().parse_args([argument])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and argument.split("=")[0] in lines[0]
