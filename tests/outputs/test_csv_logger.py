"""The agent CSV grows by appending whole lines; a resume cuts a partial last line and keeps the kept rows' bytes."""
from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pandas as pd
import pytest

from rlframe.errors import StorageError
from rlframe.outputs.csv_logger import CsvLogger

pytestmark = pytest.mark.unit

SIGNALS = ["Loss/Mean", "Loss/Stdev"]


def _row(episode: int) -> dict[str, float]:
    return {"Episode #": episode, "Total steps": 10 * episode, "Training Reward": episode / 4, "Loss/Stdev": 0.5}


def _logger(path: Path) -> CsvLogger:
    return CsvLogger(str(path), "Episode #", SIGNALS, flush_every=1000)  # flushed by hand


def test_a_flush_appends_its_rows_and_leaves_earlier_bytes_alone(tmp_path):
    path = tmp_path / "log.csv"
    logger = _logger(path)
    for episode in range(1, 4):
        logger.add_row(_row(episode))
    logger.flush()
    before = path.read_bytes()
    inode = path.stat().st_ino
    for episode in range(4, 6):
        logger.add_row(_row(episode))
    logger.flush()
    logger.flush()  # nothing new: nothing written
    after = path.read_bytes()
    assert path.stat().st_ino == inode, "the file was replaced, not appended to"
    assert after.startswith(before)
    added = after[len(before):].decode().splitlines()
    assert [line.split(",")[0] for line in added] == ["4", "5"]
    frame = pd.read_csv(path)
    assert frame["Episode #"].tolist() == [1, 2, 3, 4, 5]
    assert frame["Total steps"].tolist() == [10, 20, 30, 40, 50]
    assert list(frame.columns[-2:]) == SIGNALS and frame["Loss/Mean"].isna().all()


def test_resume_cuts_a_partial_last_line_keeps_the_kept_rows_bytes_and_appends_after_them(tmp_path):
    path = tmp_path / "log.csv"
    logger = _logger(path)
    for episode in range(1, 5):
        logger.add_row(_row(episode))
    logger.flush()
    whole = path.read_bytes()
    with open(path, "ab") as handle:  # what a SIGKILL inside the next append's write can leave
        handle.write(b"5,,0,,,,,50,,,1.2")
    resumed = _logger(path)
    resumed.resume(last_index=5)  # even a row the checkpoint would keep is dropped when it is not whole
    assert path.read_bytes() == whole
    resumed.add_row(_row(5))
    resumed.flush()
    assert pd.read_csv(path)["Episode #"].tolist() == [1, 2, 3, 4, 5]
    assert path.read_bytes().startswith(whole)

    # rows after the checkpoint are dropped; the kept ones are the same bytes
    again = _logger(path)
    again.resume(last_index=2)
    lines = whole.decode().splitlines(keepends=True)
    assert path.read_text() == "".join(lines[:3])


def test_resume_is_a_no_op_on_a_file_that_already_ends_at_the_checkpoint(tmp_path):
    path = tmp_path / "log.csv"
    logger = _logger(path)
    logger.add_row(_row(1))
    logger.flush()
    inode = path.stat().st_ino
    resumed = _logger(path)
    resumed.resume(last_index=1)
    resumed.add_row(_row(2))
    resumed.flush()
    assert path.stat().st_ino == inode
    assert pd.read_csv(path)["Episode #"].tolist() == [1, 2]


def test_a_write_that_fails_leaves_the_rows_written_before_and_retries_its_own(tmp_path):
    # A file size limit makes the append fail part-way (EFBIG), as a full disk does (ENOSPC).
    path = tmp_path / "log.csv"
    logger = _logger(path)
    for episode in range(1, 3):
        logger.add_row(_row(episode))
    logger.flush()
    before = path.read_bytes()
    for episode in range(3, 40):
        logger.add_row(_row(episode))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, hard))
    try:
        with pytest.raises(StorageError) as raised:
            logger.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert str(raised.value).startswith(f"Cannot write {path}: ")
    assert path.read_bytes() == before  # the part written before the error is cut off again
    logger.flush()
    assert pd.read_csv(path)["Episode #"].tolist() == list(range(1, 40))


def test_a_csv_deleted_during_the_run_starts_again_with_its_header(tmp_path):
    path = tmp_path / "log.csv"
    logger = _logger(path)
    logger.add_row(_row(1))
    logger.flush()
    os.unlink(path)
    logger.add_row(_row(2))
    logger.flush()
    assert pd.read_csv(path)["Episode #"].tolist() == [2]


def test_a_run_that_failed_before_its_first_row_leaves_no_csv(tmp_path):
    path = tmp_path / "log.csv"
    _logger(path).flush(create=False)
    assert not path.exists()
