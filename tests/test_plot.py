"""``rlframe-plot`` and :func:`rlframe.plot.plot_csv` on CSVs written by rlframe's own CsvLogger."""
from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest

from rlframe.errors import RlframeError
from rlframe.outputs.csv_logger import CsvLogger, csv_file_name
from rlframe.plot import build_figure, plot_csv, plot_main, read_csv

pytestmark = pytest.mark.integration

SIGNALS = ["Loss/Mean", "Loss/Stdev", "Loss/Max", "Loss/Min"]
EVALUATED_AFTER = (3, 6)


def write_basic_csv(path: str) -> str:
    """Eight training episodes with a loss, and an evaluation row after episodes 3 and 6."""
    logger = CsvLogger(path, "Episode #", SIGNALS, flush_every=1)
    for episode in range(1, 9):
        logger.add_row({"Episode #": episode, "Training Reward": 10.0 + 3 * episode, "Loss/Mean": 1.0 / episode})
        if episode in EVALUATED_AFTER:
            logger.add_row({"Episode #": episode, "Evaluation Reward": 100.0 + episode})
    logger.flush()
    return path


def write_batch_csv(path: str) -> str:
    """Five batch-RL epochs with both off-policy estimates, on scales far apart."""
    logger = CsvLogger(path, "Epoch", SIGNALS, flush_every=1)
    for epoch in range(5):
        logger.add_row({"Epoch": epoch, "Weighted Importance Sampling": 50.0 + 10 * epoch,
                        "Sequential Doubly Robust": 0.5 + 0.1 * epoch, "Loss/Mean": 2.0 - 0.3 * epoch})
    logger.flush()
    return path


@pytest.fixture
def basic_csv() -> str:
    return write_basic_csv(csv_file_name("simple_rl_graph"))


@pytest.fixture
def batch_csv() -> str:
    return write_batch_csv(csv_file_name("batch_rl_graph"))


def assert_plausible_image(path: str) -> None:
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert 200 <= image.shape[0] <= 2000 and 300 <= image.shape[1] <= 3000
    # Not a blank canvas: lines and text make many distinct colours.
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 10


def test_basic_default_plot_draws_training_line_and_evaluation_markers(basic_csv: str) -> None:
    written = plot_csv(basic_csv)

    assert written == "worker_0.simple_rl_graph.main_level.main_level.agent_0.png"
    assert_plausible_image(written)
    frame = pd.read_csv(basic_csv)
    figure = build_figure(read_csv(basic_csv), name=basic_csv)
    [ax] = figure.axes
    training, evaluation = ax.lines
    trained = frame[frame["Training Reward"].notna()]
    np.testing.assert_array_equal(training.get_xdata(), trained["Episode #"])
    np.testing.assert_array_equal(training.get_ydata(), trained["Training Reward"])
    np.testing.assert_array_equal(evaluation.get_xdata(), list(EVALUATED_AFTER))
    np.testing.assert_array_equal(evaluation.get_ydata(), [100.0 + e for e in EVALUATED_AFTER])
    assert evaluation.get_linestyle() == "None" and evaluation.get_marker() == "o"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("Episode #", "Training Reward", basic_csv)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["Training Reward", "Evaluation Reward"]


def test_batch_default_plot_has_wis_left_and_sdr_on_a_second_axis(batch_csv: str) -> None:
    written = plot_csv(batch_csv)

    assert_plausible_image(written)
    frame = pd.read_csv(batch_csv)
    left, right = build_figure(read_csv(batch_csv), name=batch_csv).axes
    assert (left.get_ylabel(), right.get_ylabel()) == ("Weighted Importance Sampling", "Sequential Doubly Robust")
    assert left.get_xlabel() == "Epoch"
    [wis], [sdr] = left.lines, right.lines
    np.testing.assert_array_equal(wis.get_xdata(), frame["Epoch"])
    np.testing.assert_array_equal(wis.get_ydata(), frame["Weighted Importance Sampling"])
    np.testing.assert_array_equal(sdr.get_ydata(), frame["Sequential Doubly Robust"])
    assert wis.get_color() != sdr.get_color()


def test_batch_evaluation_reward_is_drawn_as_markers_on_the_left_axis() -> None:
    path = "batch.csv"
    logger = CsvLogger(path, "Epoch", SIGNALS, flush_every=1)
    for epoch in range(4):
        logger.add_row({"Epoch": epoch, "Weighted Importance Sampling": 1.0 * epoch, "Sequential Doubly Robust": 2.0 * epoch,
                        **({"Evaluation Reward": 9.0} if epoch == 2 else {})})
    logger.flush()

    left, right = build_figure(read_csv(path)).axes

    assert [line.get_label() for line in left.lines] == ["Weighted Importance Sampling", "Evaluation Reward"]
    np.testing.assert_array_equal(left.lines[1].get_xdata(), [2])
    assert left.get_ylabel() == "Weighted Importance Sampling"
    assert len(right.lines) == 1


def test_y_plots_the_requested_columns_on_one_axis(basic_csv: str) -> None:
    output = os.path.join("plots", "loss.png")

    assert plot_csv(basic_csv, ["Loss/Mean", "Training Reward"], output) == output

    assert_plausible_image(output)
    [ax] = build_figure(read_csv(basic_csv), ["Loss/Mean", "Training Reward"]).axes
    loss, reward = ax.lines
    frame = pd.read_csv(basic_csv)
    np.testing.assert_array_equal(loss.get_ydata(), frame["Loss/Mean"].dropna())
    np.testing.assert_array_equal(reward.get_ydata(), frame["Training Reward"].dropna())
    assert ax.get_ylabel() == "Loss/Mean, Training Reward"
    assert not [name for name in os.listdir("plots") if name != "loss.png"], "the temporary file was left behind"


def test_unknown_column_names_it_and_the_closest_names(basic_csv: str) -> None:
    with pytest.raises(RlframeError, match=r"'Trainng Reward'.*Did you mean 'Training Reward'.*first line"):
        plot_csv(basic_csv, ["Trainng Reward"])
    assert not os.path.exists("worker_0.simple_rl_graph.main_level.main_level.agent_0.png")


def test_column_without_values_is_an_error(basic_csv: str) -> None:
    with pytest.raises(RlframeError, match=r"'Epsilon' .* has no values.*'Training Reward'"):
        plot_csv(basic_csv, ["Epsilon"])


def test_missing_default_columns_say_what_to_pass_with_y(batch_csv: str) -> None:
    frame = read_csv(batch_csv).drop(columns=["Weighted Importance Sampling", "Sequential Doubly Robust"])

    with pytest.raises(RlframeError, match=r"default columns.*--y.*'Loss/Mean'"):
        build_figure(frame)


def test_missing_file_is_an_error() -> None:
    with pytest.raises(RlframeError, match="'missing.csv' does not exist"):
        plot_csv("missing.csv")


def test_header_only_csv_is_an_error() -> None:
    CsvLogger("empty.csv", "Episode #", SIGNALS, flush_every=1).flush()

    with pytest.raises(RlframeError, match="no rows"):
        plot_csv("empty.csv")


def test_a_last_line_still_being_appended_is_left_out(basic_csv: str) -> None:
    whole = read_csv(basic_csv)
    with open(basic_csv, "a", encoding="utf-8") as file:
        file.write("9,,")  # a row cut off mid-write: no newline yet
    np.testing.assert_array_equal(read_csv(basic_csv)["Episode #"], whole["Episode #"])


def test_files_that_are_not_csvs_are_errors() -> None:
    Path("image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    Path("blank.csv").write_text("", encoding="utf-8")
    Path("words.csv").write_text("hello world\nfoo bar\n", encoding="utf-8")

    for name, message in [("image.csv", "not a readable CSV"), ("blank.csv", "empty"), ("words.csv", "no numeric column")]:
        with pytest.raises(RlframeError, match=message):
            plot_csv(name)


def test_default_output_replaces_the_csv_extension(tmp_path: Path) -> None:
    csv_path = write_basic_csv(str(tmp_path / "run" / "agent.csv"))

    assert plot_csv(csv_path) == str(tmp_path / "run" / "agent.png")
    assert sorted(os.listdir(tmp_path / "run")) == ["agent.csv", "agent.png"]


def test_plot_main_prints_what_it_wrote(basic_csv: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert plot_main([basic_csv, "-o", "out.svg"]) == 0

    assert capsys.readouterr().out == "wrote out.svg\n"
    assert Path("out.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_plot_main_reports_a_bad_column_with_status_2(basic_csv: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert plot_main([basic_csv, "--y", "Loss/Mean", "Evaluation Rewrd"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: Column 'Evaluation Rewrd'") and captured.err.count("\n") == 1
