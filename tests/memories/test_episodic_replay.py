import numpy as np
import pytest

from rlframe.memories.episodic_replay import Rollout

pytestmark = pytest.mark.unit


def _store(rollout, env_index, step, done=False, terminated=False):
    k = len(env_index)
    value = np.full((k, 1), step, np.float32)
    rollout.store(np.array(env_index), value, np.zeros(k, np.int64), np.ones(k, np.float32), value + 1,
                  np.full(k, terminated), np.full(k, done and not terminated))


def test_drain_keeps_each_copy_in_order_marks_cuts_and_loses_nothing():
    rollout = Rollout()
    _store(rollout, [0, 1], 0)
    _store(rollout, [0, 1], 1)
    _store(rollout, [1], 2, done=True, terminated=True)   # copy 1's episode ends
    _store(rollout, [0, 1], 3)                           # both still running when the update comes
    assert rollout.num_transitions == 7 and rollout.num_episodes == 1
    batch = rollout.drain()
    assert batch.obs[:, 0].tolist() == [0, 1, 3, 0, 1, 2, 3]            # copy 0, then copy 1
    assert batch.segment_end.tolist() == [False, False, True, False, False, True, True]
    assert batch.terminated.tolist() == [False, False, False, False, False, True, False]
    assert rollout.num_transitions == 0
