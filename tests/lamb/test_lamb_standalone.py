"""The lamb/ folder works on its own: copied alone into another project, it imports and trains."""

import pathlib
import shutil
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]

USER_PROJECT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])  # the user's project: only the copied lamb/ folder

    import keras
    import numpy as np

    import lamb

    assert lamb.__file__.startswith(sys.argv[1]), lamb.__file__
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-1.0], [2.0], [0.5]], "float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    schedule = lamb.WarmupPolynomialDecay(0.1, total_steps=100, warmup_steps=4)
    optimizer = lamb.LAMB(schedule, weight_decay=0.01, exclude_from_weight_decay=["bias"])
    model.compile(optimizer=optimizer, loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=16, epochs=25, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    project_packages = {"bert", "data", "trainer"} & set(sys.modules)
    print(f"{before} {after} {sorted(project_packages)}")
    """
)


def test_copied_folder_imports_and_trains_without_the_rest_of_the_project(tmp_path):
    shutil.copytree(ROOT / "lamb", tmp_path / "lamb", ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "train.py"
    script.write_text(USER_PROJECT)
    # -I: isolated mode, so neither this repository nor PYTHONPATH is on sys.path.
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    before, after, packages = result.stdout.strip().splitlines()[-1].split(" ", 2)
    assert float(after) < 0.1 * float(before)
    assert packages == "[]"
