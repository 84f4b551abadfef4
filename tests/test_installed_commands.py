"""What ``pip install`` gives a user's shell, each run in a process of its own as the shell runs it: the
``rlframe-collect`` and ``rlframe-plot`` console scripts, and ``import rl_coach`` from a plain script.

Their in-process counterparts (``collect_main``, ``plot_main``, the ``rl_coach`` name table) are tested in
test_data.py, test_plot.py and test_presets.py; these check only the installed entry points.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rlframe.outputs.csv_logger import csv_file_name

from test_plot import assert_plausible_image, write_batch_csv

pytestmark = pytest.mark.integration


def test_installed_collect_script() -> None:
    script = shutil.which("rlframe-collect") or str(Path(sys.executable).with_name("rlframe-collect"))
    done = subprocess.run([script, "--level", "CartPole-v0", "--num-envs", "3", "--episodes", "1", "-o", "d.csv"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote ") and "3 episodes (3 environments) to d.csv" in done.stdout
    assert pd.read_csv("d.csv")["episode_id"].nunique() == 3
    bad = subprocess.run([script, "--level", "NoSuchLevel-v0", "--episodes", "1", "-o", "d2.csv"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_installed_command_plots() -> None:
    batch_csv = write_batch_csv(csv_file_name("batch_rl_graph"))
    script = os.path.join(os.path.dirname(sys.executable), "rlframe-plot")

    result = subprocess.run([script, batch_csv, "--y", "Loss/Mean", "-o", "loss.png"],
                            check=False, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote loss.png\n"
    assert_plausible_image("loss.png")


def test_rl_coach_answers_imports_in_any_script_once_rlframe_is_installed(tmp_path: Path) -> None:
    # A plain script, not a preset: as a user's train-coach.py or evaluate-coach.py runs under SageMaker's toolkit.
    script = tmp_path / "script.py"
    script.write_text(
        "import rl_coach\n"
        "import rl_coach.core_types\n"
        "from rl_coach.schedules import LinearSchedule\n"
        "from rl_coach.core_types import *\n"
        "import gym\n"
        "rl_coach.logger.experiment_path = '/opt/ml/output/intermediate'\n"
        "print(LinearSchedule.__module__, rl_coach.core_types.Frames.__module__, EnvironmentSteps.__module__,"
        " gym.spaces.Box.__module__)\n"
    )
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["rlframe.schedules", "rlframe.core_types", "rlframe.core_types", "gymnasium.spaces.box"]
