"""The server's request and response bodies, in-process: what each content type reads and refuses (with the
line, row or observation named), how Accept is chosen, and that every number written gives back its float32."""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from rlframe.integrations.serving import codecs
from rlframe.integrations.serving.codecs import (
    CSV,
    JSON,
    JSONLINES,
    NPY,
    PredictionEncoder,
    RequestError,
    choose_accept,
    custom_attributes,
    decode,
)
from rlframe.integrations.serving.model import ModelMetadata, PolicyModel, Prediction

pytestmark = pytest.mark.unit


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=allow_pickle)
    return out.getvalue()


def refusal(body: bytes | str, content_type: str, shape: tuple[int, ...] | None = (4,)) -> RequestError:
    with pytest.raises(RequestError) as caught:
        decode(body, content_type, shape)
    return caught.value


OBS = np.array([[0.5, -1.25, 3.0, 1e-3], [2.0, 0.0, -0.0, 7.5]], dtype=np.float32)


@pytest.mark.parametrize("content_type, body, expected", [
    (JSON, "[0.5, -1.25, 3.0, 0.001]", OBS[:1]),
    (JSON, json.dumps(OBS.tolist()), OBS),
    (JSON, json.dumps({"instances": OBS.tolist()}), OBS),
    (JSON, json.dumps({"instances": OBS[0].tolist()}), OBS[:1]),
    (JSONLINES, "".join(json.dumps(r) + "\n" for r in OBS.tolist()), OBS),
    (JSONLINES, "".join(json.dumps(r) + "\r\n" for r in OBS.tolist()) + "\n", OBS),
    (CSV, "0.5,-1.25,3,0.001\n2, 0,-0,7.5", OBS),
    (NPY, npy(OBS), OBS),
    (NPY, npy(OBS[0].astype(np.float64)), OBS[:1]),
    (NPY, npy(np.array([[1, 2, 3, 4]], dtype=np.int16)), np.array([[1, 2, 3, 4]], np.float32)),
], ids=["json-one", "json-list", "json-instances", "json-instances-one", "jsonlines", "jsonlines-crlf", "csv",
        "npy", "npy-one-float64", "npy-int"])
def test_each_content_type_reads_one_observation_or_a_batch(content_type, body, expected):
    got = decode(body, content_type, (4,))
    assert got.values.dtype == np.float32
    np.testing.assert_array_equal(got.values, expected)


def test_a_json_object_may_ask_for_sampled_actions():
    assert decode('{"instances": [[1, 2, 3, 4]], "action": "Sample"}', JSON, (4,)).action == "sample"
    assert decode('{"instances": [[1, 2, 3, 4]]}', JSON, (4,)).action is None
    assert "is 'random': use greedy" in refusal('{"instances": [[1, 2, 3, 4]], "action": "random"}', JSON).message


@pytest.mark.parametrize("content_type, body, message", [
    (JSON, "[1, 2, 3]", "The JSON body: expected observations of shape (4,) (one, or a list of them), got (3,)."),
    (JSON, "[[1, 2, 3], [4, 5, 6]]", "expected observations of shape (4,) (one, or a list of them), got 2 of shape (3,)."),
    (JSON, "[[1, 2, 3, 4], [5, 6, 7]]", "is not a list of equally long lists of numbers"),
    (JSON, "[1, 2, 3, \"4\"]", "The JSON body holds text: observation values must be numbers"),
    (JSON, "[true, false, true, true]", "holds true/false"),
    (JSON, "[1, 2, 3, null]", "is not a list of equally long lists of numbers"),
    (JSON, "[1, 2, 3, NaN]", "The JSON body holds NaN, an infinity or a number beyond float32's range"),
    (JSON, "[[1, 2, 3, 4], [1, 2, 3, 1e39]]", "The JSON body: observation 1 holds NaN, an infinity"),
    (JSON, "[1, 2, 3, 1" + "0" * 400 + "]", "is not a list of equally long lists of numbers"),
    (JSON, "[1, 2, 3, 4", "The body is not JSON (Expecting ',' delimiter: line 1 column 12 (char 11))."),
    (JSON, b"\xff\xfe[", "The body is not JSON"),
    (JSON, "", "The body is not JSON"),
    (JSON, '{"instance": [[1, 2, 3, 4]]}', 'needs "instances"'),
    (JSON, "[]", "got (0,)"),
    (JSONLINES, "[1, 2, 3, 4]\n[1, 2, 3]\n", "Line 2: expected an observation of shape (4,), got (3,)."),
    (JSONLINES, "[1, 2, 3, 4]\n\n[1, 2, 3, 4]\n", "Line 2 is empty: send one observation per line."),
    (JSONLINES, "[1, 2, 3, 4]\n{\"instances\": [[1, 2, 3, 4]]}", "Line 2 holds an object, not an observation (a list of shape (4,))."),
    (JSONLINES, "[1, 2, 3, 4], [1, 2, 3, 4]\n", "Line 1 is not JSON (Extra data"),
    (JSONLINES, "[1, 2, 3, 4]\n[1, 2, 3, \"x\"]", "Line 2 holds text"),
    (JSONLINES, "\n\n", "The body is empty: send one observation per line."),
    (CSV, "1,2,3,4\n1,2,3\n", "Row 2 has 3 values, expected 4 (one observation of shape (4,) per row, no header)."),
    (CSV, "a,b,c,d\n1,2,3,4\n", "Row 1: 'a' is not a number (rows hold numbers only, no header)."),
    (CSV, "1,2,3,nan", "The CSV body holds NaN"),
    (CSV, "1;2;3;4", "Row 1 has 1 values, expected 4"),
    (CSV, "", "The body is empty: send one observation per row."),
    (NPY, npy(np.array([[1, 2, 3, 4]], dtype=object), allow_pickle=True), "pickles are refused"),
    (NPY, pickle.dumps(np.zeros(4)), "is not a .npy array"),
    (NPY, npy(np.zeros((2, 4), np.float32))[:-5], "The .npy body cannot be read"),
    (NPY, npy(np.zeros((2, 3), np.float32)), "The .npy body: expected observations of shape (4,) (one, or a list of them), got 2 of shape (3,)."),
    (NPY, npy(np.array(["a", "b", "c", "d"])), "has dtype <U1: send numbers"),
    (NPY, npy(np.array([1, 2, 3, np.inf], np.float32)), "The .npy body holds NaN, an infinity"),
])
def test_a_bad_body_is_a_400_that_says_what_and_where(content_type, body, message):
    error = refusal(body, content_type)
    assert error.status == 400 and message in error.message and "\n" not in error.message


def test_an_unsupported_content_type_is_a_415():
    error = refusal("<obs/>", "application/xml")
    assert error.status == 415 and "send one of application/json, application/jsonlines, text/csv" in error.message


def lines(observations: np.ndarray) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in observations.tolist()).encode()


def test_large_json_lines_and_csv_read_fast_and_exactly_and_still_name_a_bad_line():
    rng = np.random.default_rng(0)
    observations = (rng.normal(size=(5000, 4)) * 10.0 ** rng.integers(-6, 6, (5000, 4))).astype(np.float32)
    np.testing.assert_array_equal(decode(lines(observations), JSONLINES, (4,)).values, observations)
    table = "".join(",".join(repr(v) for v in row) + "\n" for row in observations.tolist())
    np.testing.assert_array_equal(decode(table, CSV, (4,)).values, observations)
    bad = lines(observations[:3000]) + b"[1, 2, 3]\n" + lines(observations[3000:])
    assert refusal(bad, JSONLINES).message == "Line 3001: expected an observation of shape (4,), got (3,)."
    bad = lines(observations[:3000]) + b"[1, 2, 3, NaN]\n" + lines(observations[3000:])
    assert refusal(bad, JSONLINES).message.startswith("Line 3001 holds NaN")
    rows = table.splitlines(keepends=True)
    bad_table = "".join(rows[:3999] + ["1,2,x,4\n"] + rows[3999:])
    assert refusal(bad_table, CSV).message == "Row 4000: 'x' is not a number (rows hold numbers only, no header)."


def spelled(rng: np.random.Generator, count: int) -> list[list[str]]:
    """``count`` rows of four numbers in JSON's every spelling: integers, exponents, signs, zeros, wide magnitudes."""
    values = (rng.normal(size=(count, 4)) * 10.0 ** rng.integers(-30, 30, (count, 4))).tolist()
    forms = [repr, lambda v: f"{v:.8f}", lambda v: f"{v:E}", lambda v: str(int(v)) if abs(v) < 1e15 else repr(v),
             lambda v: "-0.0" if v < 0 else "0", lambda v: f"{v:.3e}"]
    return [[forms[int(rng.integers(len(forms)))](v) for v in row] for row in values]


def test_the_fast_paths_read_the_values_the_exact_path_reads():
    """Large JSON Lines and CSV bodies are read in one flat parse; every value is the float32 the exact path (one
    line at a time) reads, whatever JSON spelling and white space the lines use."""
    rng = np.random.default_rng(4)
    rows = spelled(rng, 3000)
    pads = ["", " ", "  ", "\t"]
    json_lines = [f"[{pads[i % 4]}" + f"{pads[i % 3]},{pads[i % 2]}".join(row) + "]" for i, row in enumerate(rows)]
    csv_rows = [f"{pads[i % 3]},{pads[i % 2]}".join(row) + ("\r" if i % 2 else "") for i, row in enumerate(rows)]
    exact = np.concatenate([decode(line, JSONLINES, (4,)).values for line in json_lines])
    text = "\n".join(json_lines).encode()
    assert len(text) >= codecs._FAST_PATH_BYTES
    np.testing.assert_array_equal(codecs._read_flat_json_lines(text, len(rows), 4), exact)
    np.testing.assert_array_equal(decode(text + b"\n", JSONLINES, (4,)).values, exact)
    table = "\n".join(csv_rows).encode()
    assert codecs._skeleton_is(table, b",,,\n", len(rows))
    np.testing.assert_array_equal(codecs._flat_numbers(b"[" + table.replace(b"\n", b",") + b"]", len(rows), 4), exact)
    np.testing.assert_array_equal(decode(table, CSV, (4,)).values, exact)
    np.testing.assert_array_equal(decode(table, CSV, (2, 2)).values, exact.reshape(-1, 2, 2))


@pytest.mark.parametrize("content_type, bad, message", [
    (JSONLINES, "[1, 2, 3]\n[4, 5, 6, 7, 8]", "Line 2001: expected an observation of shape (4,), got (3,)."),
    (JSONLINES, "[1, 2, 3, 4]5", "Line 2001 is not JSON (Extra data"),
    (JSONLINES, "5[1, 2, 3, 4]", "Line 2001 is not JSON (Extra data"),
    (JSONLINES, "[1, 2, 3, .5]", "Line 2001 is not JSON"),  # JSON Lines are JSON, in a large body too
    (JSONLINES, "[1, 2, 3, 1e39]", "Line 2001 holds NaN, an infinity or a number beyond float32's range"),
    (JSONLINES, '[1, 2, 3, "4"]', "Line 2001 holds text"),
    (JSONLINES, "[1, 2, [3], 4]", "Line 2001 is not a list of equally long lists of numbers"),
    (JSONLINES, "[1, 2, 3, 4]\n", "Line 2002 is empty"),
    (CSV, "1,2,3\n4,5,6,7,8", "Row 2001 has 3 values, expected 4"),
    (CSV, "1,2,3,4,", "Row 2001 has 5 values, expected 4"),
    (CSV, "1,2,3,", "Row 2001: '' is not a number"),
    (CSV, "1,2,3,1e39", "The CSV body: observation 2000 holds NaN, an infinity"),
    (CSV, "1,2,3,nan", "The CSV body: observation 2000 holds NaN"),
    (CSV, "1,2,3,4\n", "Row 2002 is empty"),
])
def test_a_large_body_that_the_fast_path_cannot_read_is_refused_naming_its_line(content_type, bad, message):
    good = "[0.5, 1, 2, 3]\n" if content_type == JSONLINES else "0.5,1,2,3\n"
    body = good * 2000 + bad + "\n" + good * 2000
    error = refusal(body, content_type)
    assert error.status == 400 and message in error.message, error.message


def test_csv_spellings_json_refuses_are_read_in_a_large_body_too():
    """A CSV number Python reads but JSON does not (.5, 1., +1, 01, 1_0) sends a large body to the exact path."""
    body = "0.5,1,2,3\n" * 2000 + ".5,1.,+1,01\n" + "1_0,-.25,1e0,2\n"
    values = decode(body, CSV, (4,)).values
    np.testing.assert_array_equal(values[-2:], np.float32([[0.5, 1, 1, 1], [10, -0.25, 1, 2]]))


@pytest.mark.parametrize("header, expected", [
    (None, JSON), ("", JSON), ("*/*", JSON), ("text/csv", CSV), ("application/jsonlines", JSONLINES),
    ("application/x-npy", NPY), ("text/html;q=0.9, text/csv;q=0.5", CSV), ("text/csv;q=0.5, application/x-npy", NPY),
    ("application/xml, text/*", CSV), ("application/*", JSON), ("Text/CSV; charset=utf-8", CSV),
    ("text/html, */*;q=0.1", JSON), ("text/csv;q=0, application/x-npy;q=oops, application/jsonlines", JSONLINES),
])
def test_accept_picks_the_best_type_the_server_writes(header, expected):
    assert choose_accept(header, JSON) == expected


def test_an_accept_naming_nothing_the_server_writes_is_a_406():
    with pytest.raises(RequestError) as caught:
        choose_accept("text/html, image/png", JSON)
    assert caught.value.status == 406 and "accept one of application/json, application/jsonlines" in caught.value.message


def test_custom_attributes_are_key_value_pairs():
    assert custom_attributes("trace=abc; Action=sample,flag") == {"trace": "abc", "action": "sample"}
    assert custom_attributes(None) == {}


@pytest.fixture(scope="module")
def models(exported_model_dirs: dict[str, Path]) -> dict[str, PolicyModel]:
    return {name: PolicyModel(exported_model_dirs[name]) for name in ("dqn", "ppo_discrete", "ppo_continuous")}


def random_prediction(metadata: ModelMetadata, batch: int, rng: np.random.Generator) -> Prediction:
    """Values of every magnitude float32 has, and every kind of action."""
    def values(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) * 10.0 ** rng.integers(-40, 38, shape)).astype(np.float32)

    width = metadata.action_width
    actions = rng.integers(0, width, batch) if metadata.discrete else values(batch, width)
    outputs = tuple(values(batch) if o.width is None else values(batch, o.width) for o in metadata.outputs)
    return Prediction(values(batch, width), actions, outputs)


@pytest.mark.parametrize("name", ["dqn", "ppo_discrete", "ppo_continuous"])
def test_every_number_written_gives_back_its_float32_and_lines_are_one_observation_each(models, name):
    metadata = models[name].metadata
    encoder = PredictionEncoder(metadata)
    prediction = random_prediction(metadata, 300, np.random.default_rng(1))
    document = json.loads(encoder.encode(prediction, JSON))
    names = [o.name for o in metadata.outputs]
    assert list(document) == ["predictions", "actions", "outputs"] and list(document["outputs"]) == names
    np.testing.assert_array_equal(np.float32(document["predictions"]), prediction.distribution)
    np.testing.assert_array_equal(np.asarray(document["actions"], prediction.actions.dtype), prediction.actions)
    for output_name, output in zip(names, prediction.outputs):
        np.testing.assert_array_equal(np.float32(document["outputs"][output_name]), output)
    # A line of JSON Lines is the JSON answer for its observation alone.
    line_texts = encoder.encode(prediction, JSONLINES).decode().splitlines()
    assert len(line_texts) == 300
    for i in (0, 137, 299):
        alone = Prediction(prediction.distribution[i:i + 1], prediction.actions[i:i + 1],
                           tuple(o[i:i + 1] for o in prediction.outputs))
        assert line_texts[i] == encoder.encode(alone, JSON).decode()
        assert json.loads(line_texts[i])["predictions"][0] == document["predictions"][i]
    rows = np.loadtxt(io.StringIO(encoder.encode(prediction, CSV).decode()), delimiter=",", ndmin=2)
    width = metadata.action_width
    np.testing.assert_array_equal(rows[:, :width].astype(np.float32), prediction.distribution)
    np.testing.assert_array_equal(rows[:, width:].astype(np.float32).reshape(prediction.actions.shape),
                                  prediction.actions)
    np.testing.assert_array_equal(np.load(io.BytesIO(encoder.encode(prediction, NPY))), prediction.distribution)


def test_outputs_that_are_not_finite_are_written_as_json_nan_and_infinity(models):
    metadata = models["dqn"].metadata
    prediction = Prediction(np.array([[np.nan, 0.5]], np.float32), np.array([1]),
                            (np.array([[np.inf, -np.inf]], np.float32),))
    body = PredictionEncoder(metadata).encode(prediction, JSON).decode()
    assert body == '{"predictions": [[NaN, 0.5]], "actions": [1], "outputs": {"q_values": [[Infinity, -Infinity]]}}'


def alone(prediction: Prediction, i: int) -> Prediction:
    return Prediction(prediction.distribution[i:i + 1], prediction.actions[i:i + 1],
                      tuple(o[i:i + 1] for o in prediction.outputs))


@pytest.mark.parametrize("name", ["dqn", "ppo_discrete", "ppo_continuous"])
def test_a_batch_is_written_as_the_same_bytes_as_its_observations_one_by_one(models, name):
    """SingleRecord and MultiRecord transforms write the same bytes: a batch's lines and rows (whole arrays
    written at once) are those of its observations written alone, also when some values are not finite (written
    number by number) and when an output is the distribution itself."""
    metadata = models[name].metadata
    encoder = PredictionEncoder(metadata)
    prediction = random_prediction(metadata, 200, np.random.default_rng(2))
    shared = Prediction(prediction.outputs[-1], prediction.actions, prediction.outputs)  # distribution is an output
    broken = random_prediction(metadata, 200, np.random.default_rng(2))
    broken.distribution[7, 0] = np.nan
    broken.outputs[0][[3, 9]] = [np.inf, -np.inf]
    for batch in (prediction, shared, broken):
        for accept in (JSONLINES, CSV):
            whole = encoder.encode(batch, accept)
            assert whole == b"".join(encoder.encode(alone(batch, i), accept) for i in range(200))
    lines = encoder.encode(broken, JSONLINES).splitlines()
    assert lines[:3] == encoder.encode(prediction, JSONLINES).splitlines()[:3]
    assert b"[[NaN" in lines[7] and b"Infinity" in lines[3] and b"-Infinity" in lines[9]
    assert b"NaN," in encoder.encode(broken, CSV).splitlines()[7]
    # The JSON object of a batch holding NaN has the same number texts as the one without.
    document = encoder.encode(broken, JSON).replace(b"NaN", b"0").replace(b"Infinity", b"0")
    assert len(json.loads(document)["predictions"]) == 200


def test_each_float32_is_written_as_its_shortest_text_that_reads_back_exactly(models):
    """orjson's shortest texts of float32 values, read as JSON readers do (a float64, then float32), give back
    every value: 100,000 random bit patterns of every exponent, subnormals included."""
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2 ** 32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = values[np.isfinite(values)]
    metadata = models["ppo_continuous"].metadata
    prediction = Prediction(values[:, None], values[:, None], (values, values[:, None], values[:, None]))
    body = PredictionEncoder(metadata).encode(prediction, CSV)
    texts = [row.split(b",")[0] for row in body.splitlines()]
    np.testing.assert_array_equal(np.array([float(t) for t in texts]).astype(np.float32), values)
    assert max(len(t.lstrip(b"-").split(b"e")[0].replace(b".", b"").strip(b"0")) for t in texts) <= 9  # digits
