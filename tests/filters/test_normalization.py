import numpy as np
import pytest

from rlframe.filters.filter import InputFilter
from rlframe.filters.observation import ObservationNormalizationFilter
from rlframe.filters.reward import RewardClippingFilter, RewardNormalizationFilter, RewardRescaleFilter

pytestmark = pytest.mark.unit


def test_normalization_matches_running_mean_and_std_and_clips():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(5000, 2)).astype(np.float32)
    norm = ObservationNormalizationFilter()
    norm.filter(data, update=True)
    out = norm.filter(np.array([[3.0, 3.0], [100.0, -100.0]], np.float32), update=False)
    np.testing.assert_allclose(out[0], [0.0, 0.0], atol=0.1)
    np.testing.assert_allclose(out[1], [5.0, -5.0])


def test_statistics_of_values_around_1e6_with_std_1_match_numpy_on_the_concatenated_batches():
    # Sums of squares cancel to noise here (and Coach's prior at mean 0 added 1e-2 * mean^2 / rows to the
    # variance: std ~1000 instead of 1); the parallel update keeps float64 precision.
    rng = np.random.default_rng(3)
    batches = [1e6 + rng.normal(0.0, 1.0, size=(int(size), 3)) for size in rng.integers(1, 200, size=60)]
    norm = ObservationNormalizationFilter()
    rewards = RewardNormalizationFilter()
    for batch in batches:
        norm.filter(batch.astype(np.float32), update=True)
        rewards.filter(batch[:, 0].astype(np.float32), update=True)
    data = np.concatenate(batches).astype(np.float32).astype(np.float64)  # what the filters saw
    np.testing.assert_allclose(norm.std, 1.0, rtol=0.01)
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-12)
    # the prior (1e-2 rows of variance 1) is the only difference from numpy's std
    prior = np.sqrt((np.square(data - data.mean(axis=0)).sum(axis=0) + 1e-2) / (len(data) + 1e-2))
    np.testing.assert_allclose(norm.std, prior, rtol=1e-9)
    np.testing.assert_allclose(norm.std, data.std(axis=0), rtol=1e-5)
    centred = norm.filter(np.full((1, 3), data.mean(axis=0)[0], np.float32), update=False)
    assert np.all(np.abs(centred) < 0.1), centred
    # rewards are divided by their std: a reward equal to that std becomes 1
    std = data[:, 0].std()
    np.testing.assert_allclose(rewards.filter(np.array([std], np.float32), update=False), [1.0], rtol=1e-3)


def test_one_batch_or_many_give_the_same_statistics_with_coachs_prior():
    rng = np.random.default_rng(4)
    data = rng.normal(-2.0, 0.5, size=(300, 4))
    whole, pieces = ObservationNormalizationFilter(), ObservationNormalizationFilter()
    whole.filter(data, update=True)
    for start in range(0, 300, 7):
        pieces.filter(data[start:start + 7], update=True)
    np.testing.assert_allclose(pieces.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(pieces.std, whole.std, rtol=1e-12)
    # a first batch of identical observations: the prior's 1e-2 over 1.01 rows, under the floor: std sqrt(1e-2)
    single = ObservationNormalizationFilter()
    single.filter(np.full((1, 2), 7.0, np.float32), update=True)
    np.testing.assert_allclose(single.std, 0.1, rtol=1e-12)
    np.testing.assert_allclose(single.filter(np.full((1, 2), 7.0, np.float32), update=False), 0.0)
    # before any update the observation filter only clips and the reward filter divides by 1
    np.testing.assert_array_equal(ObservationNormalizationFilter().filter(np.array([[9.0, 0.5]], np.float32), False),
                                  [[5.0, 0.5]])
    np.testing.assert_array_equal(RewardNormalizationFilter().filter(np.array([0.5, -9.0], np.float32), False), [0.5, -5.0])


def test_filter_state_round_trip_gives_identical_outputs():
    stage = InputFilter()
    stage.add_observation_filter("observation", "normalize", ObservationNormalizationFilter())
    stage.add_reward_filter("normalize", RewardNormalizationFilter())
    stage.filter_observation(np.random.default_rng(1).normal(size=(100, 3)).astype(np.float32), update=True)
    stage.filter_reward(np.random.default_rng(1).normal(size=100).astype(np.float32), update=True)
    fresh = InputFilter()
    fresh.add_observation_filter("observation", "normalize", ObservationNormalizationFilter())
    fresh.add_reward_filter("normalize", RewardNormalizationFilter())
    fresh.load_state(stage.state())
    probe = np.random.default_rng(2).normal(size=(10, 3)).astype(np.float32)
    np.testing.assert_array_equal(stage.filter_observation(probe, False), fresh.filter_observation(probe, False))
    np.testing.assert_array_equal(stage.filter_reward(probe[:, 0], False), fresh.filter_reward(probe[:, 0], False))
    assert sorted(stage.state()) == [
        f"{prefix}.{key}" for prefix in ("observation_filters.observation.normalize", "reward_filters.normalize")
        for key in ("_count", "_m2", "_mean", "_std")]


def test_state_written_as_sums_before_the_parallel_update_still_loads():
    # The layout of earlier checkpoints: Coach's _count, _sum and _sum_squares, each including the prior.
    data = np.random.default_rng(5).normal(4.0, 3.0, size=(500, 2))
    old_state = {"_count": np.asarray(500 + 1e-2), "_sum": data.sum(axis=0),
                 "_sum_squares": np.square(data).sum(axis=0) + 1e-2, "_mean": np.zeros(2), "_std": np.ones(2)}
    loaded, fresh = ObservationNormalizationFilter(), ObservationNormalizationFilter()
    loaded.load_state(old_state)
    fresh.filter(data, update=True)
    np.testing.assert_allclose(loaded.mean, fresh.mean, rtol=1e-10)
    np.testing.assert_allclose(loaded.std, fresh.std, rtol=1e-10)
    rewards, fresh_rewards = RewardNormalizationFilter(), RewardNormalizationFilter()
    rewards.load_state({"_count": np.asarray(500 + 1e-2), "_sum": np.asarray(data[:, 0].sum()),
                        "_sum_squares": np.asarray(np.square(data[:, 0]).sum() + 1e-2)})
    fresh_rewards.filter(data[:, 0], update=True)
    probe = np.array([1.0, -2.0], np.float32)
    np.testing.assert_allclose(rewards.filter(probe, False), fresh_rewards.filter(probe, False), rtol=1e-6)
    # an old reward filter that never updated (its _sum is 0 at the prior's count) starts afresh
    untouched = RewardNormalizationFilter()
    untouched.load_state({"_count": np.asarray(1e-2), "_sum": np.asarray(0.0), "_sum_squares": np.asarray(1e-2)})
    np.testing.assert_array_equal(untouched.filter(probe, False), probe)


def test_reward_filters_apply_in_order():
    stage = InputFilter()
    stage.add_reward_filter("rescale", RewardRescaleFilter(0.5))
    stage.add_reward_filter("clip", RewardClippingFilter(-1.0, 1.0))
    np.testing.assert_allclose(stage.filter_reward(np.array([4.0, 1.0, -6.0], np.float32), False), [1.0, 0.5, -1.0])
