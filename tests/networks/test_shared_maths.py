"""The shared maths (rlframe.networks.distributions) and packed column layouts (rlframe.networks.columns)."""
import numpy as np
import pytest
from mxnet import nd

from rlframe.networks.columns import Columns
from rlframe.networks.distributions import (
    categorical_log_prob_entropy,
    chunked,
    gaussian_log_prob_entropy,
    log_softmax,
    softmax,
)

pytestmark = pytest.mark.unit


def test_softmax_is_stable_and_matches_the_definition():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1001.0, 999.0]])
    probs = softmax(logits)
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(probs[0], expected, rtol=1e-12)
    assert np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(log_softmax(logits)), probs, rtol=1e-12)
    np.testing.assert_allclose(softmax(logits, temperature=0.5), softmax(logits * 2.0), rtol=1e-12)


def test_chunked_equals_one_call_and_calls_in_slices():
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    sizes = []

    def forward(batch):
        sizes.append(len(batch))
        return batch * 2

    np.testing.assert_array_equal(chunked(forward, x, rows=4), x * 2)
    assert sizes == [4, 4, 2]
    assert chunked(forward, x[:0], rows=4).shape == (0, 3)


def test_categorical_and_gaussian_log_probs_match_numpy():
    logits = np.array([[0.1, 0.5, -1.0], [2.0, 0.0, 0.0]], dtype=np.float32)
    action = np.array([2, 0], dtype=np.float32)
    log_prob, entropy = categorical_log_prob_entropy(nd, nd.array(logits), nd.array(action))
    p = softmax(logits.astype(np.float64))
    np.testing.assert_allclose(log_prob.asnumpy(), np.log(p[[0, 1], [2, 0]]), rtol=1e-4)
    np.testing.assert_allclose(entropy.asnumpy(), -(p * np.log(p)).sum(axis=1), rtol=1e-5)

    mean = np.array([[0.0, 1.0]], dtype=np.float32)
    log_std = np.array([[0.0, np.log(2.0)]], dtype=np.float32)
    a = np.array([[1.0, -1.0]], dtype=np.float32)
    log_prob, entropy = gaussian_log_prob_entropy(nd, nd.array(mean), nd.array(log_std), nd.array(a))
    std = np.exp(log_std)
    expected = (-0.5 * ((a - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum()
    np.testing.assert_allclose(log_prob.asnumpy(), [expected], rtol=1e-5)
    np.testing.assert_allclose(entropy.asnumpy(), [(np.log(std) + 0.5 * np.log(2 * np.pi * np.e)).sum()], rtol=1e-5)


def test_columns_pack_slice_and_read_agree_by_name():
    layout = Columns(obs=2, action=1, mask=3)
    obs = np.array([[1.0, 2.0], [3.0, 4.0]])
    packed = layout.pack(obs=obs, action=np.array([1, 0]), mask=np.array([[True, False, True], [False, False, True]]))
    assert packed.dtype == np.float32 and packed.shape == (2, layout.width) == (2, 6)
    np.testing.assert_array_equal(layout.slice(nd, nd.array(packed), "obs").asnumpy(), obs)
    np.testing.assert_array_equal(layout.column(nd, nd.array(packed), "action").asnumpy(), [1.0, 0.0])
    row = layout.read(packed[1])
    assert row["action"] == 0.0 and row["mask"].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="needs exactly"):
        layout.pack(obs=obs, action=np.array([1, 0]))
    with pytest.raises(ValueError, match="slice"):
        layout.column(nd, nd.array(packed), "obs")


def test_columns_stack_builds_a_named_statistics_row():
    stats = Columns(loss=1, ratio=1)
    stacked = stats.stack(nd, ratio=nd.array([2.0, 3.0]), loss=nd.array([0.5, 0.25]))
    assert stacked.asnumpy().tolist() == [[0.5, 2.0], [0.25, 3.0]]
    assert stats.read(stacked.asnumpy().mean(axis=0)) == {"loss": 0.375, "ratio": 2.5}
