import numpy as np

from rlframe.filters.filter import InputFilter
from rlframe.filters.observation import ObservationNormalizationFilter
from rlframe.filters.reward import RewardClippingFilter, RewardRescaleFilter


def test_normalization_matches_running_mean_and_std_and_clips():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(5000, 2)).astype(np.float32)
    norm = ObservationNormalizationFilter()
    norm.filter(data, update=True)
    out = norm.filter(np.array([[3.0, 3.0], [100.0, -100.0]], np.float32), update=False)
    np.testing.assert_allclose(out[0], [0.0, 0.0], atol=0.1)
    np.testing.assert_allclose(out[1], [5.0, -5.0])


def test_filter_state_round_trip_gives_identical_outputs():
    stage = InputFilter()
    stage.add_observation_filter("observation", "normalize", ObservationNormalizationFilter())
    stage.filter_observation(np.random.default_rng(1).normal(size=(100, 3)).astype(np.float32), update=True)
    fresh = InputFilter()
    fresh.add_observation_filter("observation", "normalize", ObservationNormalizationFilter())
    fresh.load_state(stage.state())
    probe = np.random.default_rng(2).normal(size=(10, 3)).astype(np.float32)
    np.testing.assert_array_equal(stage.filter_observation(probe, False), fresh.filter_observation(probe, False))


def test_reward_filters_apply_in_order():
    stage = InputFilter()
    stage.add_reward_filter("rescale", RewardRescaleFilter(0.5))
    stage.add_reward_filter("clip", RewardClippingFilter(-1.0, 1.0))
    np.testing.assert_allclose(stage.filter_reward(np.array([4.0, 1.0, -6.0], np.float32), False), [1.0, 0.5, -1.0])
