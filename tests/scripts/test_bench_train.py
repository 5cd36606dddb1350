"""scripts/benchmarks/bench_train.py runs our training step and the peer's, and prints the ratio table.

A minimal run: BERT-tiny, a batch of 4 sequences of 32 tokens, one timed turn, float32 only, our step with
1 and 2 accumulation micro-steps, the peer without XLA (when keras-hub, a benchmark-only dependency, is
installed; otherwise our rows alone).
"""

import importlib.util
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "benchmarks" / "bench_train.py"
HAS_PEER = importlib.util.find_spec("keras_hub") is not None


def test_minimal_run_prints_the_table_and_the_ratios():
    command = [
        sys.executable,
        str(SCRIPT),
        "--sizes=tiny",
        "--batch_sizes=tiny=4",
        "--steps_per_call=tiny=1",
        "--seq_length=32",
        "--predictions=4",
        "--policies=float32",
        "--accumulation=1,2",
        "--xla=off",
        "--peer_xla=off",
        "--repeats=1",
        "--peak_size=256",
    ]
    result = subprocess.run(
        command + ([] if HAS_PEER else ["--no_peer"]), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| size"))
    assert "seq/s" in header and "of peak" in header and "vs peer best" in header
    table = [line for line in lines if line.startswith("| tiny")]
    assert [cell.split("|")[2].strip() for cell in table] == ["ours", "ours"] + (
        ["keras-hub"] if HAS_PEER else []
    )

    rows = json.loads(lines[-1])["rows"]
    assert [row["accumulation"] for row in rows if row["side"] == "ours"] == [1, 2]
    # Matmul FLOPs of one BERT-tiny sequence (L=2, H=128, F=512, V=30522, S=32, P=4), forward x 3 for the
    # backward pass: 4 projections 2SH^2, FFN 2 x 2SHF, attention 2 x 2S^2H per layer; masked-LM transform
    # and decoder at P positions; pooler and next-sentence head (ours only).
    L, H, F, V, S, P = 2, 128, 512, 30522, 32, 4
    peer_forward = L * (4 * 2 * S * H * H + 2 * 2 * S * H * F + 2 * 2 * S * S * H) + P * (
        2 * H * H + 2 * H * V
    )
    flops = {"ours": 3 * (peer_forward + 2 * H * H + 2 * 2 * H), "keras-hub": 3 * peer_forward}
    for row in rows:
        assert row["sequences_per_second"] > 0 and row["peak_flops_per_second"] > 0
        expected = flops[row["side"]] * row["sequences_per_second"]
        assert abs(row["model_flops_per_second"] - expected) <= 1e-9 * expected
    if HAS_PEER:
        peer = next(row for row in rows if row["side"] == "keras-hub")
        assert peer["vs_peer_best"] == 1.0
        ours = next(row for row in rows if row["side"] == "ours")
        expected = ours["sequences_per_second"] / peer["sequences_per_second"]
        assert abs(ours["vs_peer_best"] - expected) < 1e-9
        assert any(line.startswith("tiny: the peer's best is keras-hub float32 no XLA") for line in lines)
