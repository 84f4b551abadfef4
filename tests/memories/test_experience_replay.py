import numpy as np
import pytest

from rlframe.memories.experience_replay import ExperienceReplay, TransitionBatch

pytestmark = pytest.mark.unit


def _batch(start, count):
    values = np.arange(start, start + count, dtype=np.float32)
    return TransitionBatch(values[:, None], values.astype(np.int64), values, values[:, None] + 0.5,
                           np.zeros(count, bool), np.zeros(count, bool))


def test_ring_buffer_keeps_newest_after_wrap_around():
    memory = ExperienceReplay(5, (1,), (), np.int64)
    memory.store(_batch(0, 4))
    memory.store(_batch(4, 4))
    assert len(memory) == 5
    assert sorted(memory.obs[:, 0].tolist()) == [3, 4, 5, 6, 7]


def test_sampling_never_returns_unfilled_slots():
    memory = ExperienceReplay(100, (1,), (), np.int64)
    memory.store(_batch(10, 3))
    sample = memory.sample(500, np.random.default_rng(0))
    assert set(sample.obs[:, 0].tolist()) == {10.0, 11.0, 12.0}
    np.testing.assert_array_equal(sample.next_obs[:, 0], sample.obs[:, 0] + 0.5)


def test_state_round_trip_preserves_order_and_episode_count():
    memory = ExperienceReplay(4, (1,), (), np.int64)
    batch = _batch(0, 6)
    memory.store(batch._replace(truncated=np.array([0, 1, 0, 0, 0, 1], bool)))
    restored = ExperienceReplay(4, (1,), (), np.int64)
    restored.load_state(memory.state())
    assert restored.state()["obs"][:, 0].tolist() == [2, 3, 4, 5]
    assert restored.num_episodes == 2
