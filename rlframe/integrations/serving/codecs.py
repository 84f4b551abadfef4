"""Request bodies in, response bodies out: the four content types of ``/invocations``.

Observations come in as

- ``application/json``: one observation (a nested list of the observation's shape, e.g. ``[0.1, 0.2, 0.3, 0.4]``),
  a list of them, or TF Serving's ``{"instances": [...]}`` (optionally with ``"action": "greedy" | "sample"``);
- ``application/jsonlines``: one observation per line;
- ``text/csv``: one observation per row, its values flattened (no header);
- ``application/x-npy``: one array of shape ``observation_shape`` or ``(batch, *observation_shape)``, read
  with pickles refused.

Every decoder returns float32 observations ``(batch, *observation_shape)``, all finite, or raises
:class:`RequestError` with the HTTP status and one line that says what is wrong and where (the line, row or
observation) and what shape was expected. Large JSON Lines and CSV bodies of flat observations take a fast path:
their numbers, brackets gone and lines joined, are one flat JSON list for orjson (nested lists, or Python's
``json``, read several times slower), with the lines' shapes checked by counting; whatever it cannot read (CSV's
spellings that JSON refuses, ``.5``, ``1.``, ``+1``, ``01``, ``nan``, included) goes to the exact path, which reads
the same values and names a bad line.

Responses are written by :class:`PredictionEncoder` with every number as the shortest text that gives back its
float32 exactly (orjson writes numpy arrays so, a few times faster than Python's ``'%.9g'``), from the texts of whole
arrays at once rather than one ``json.dumps`` per observation.
"""
from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import orjson

if TYPE_CHECKING:
    from rlframe.integrations.serving.model import ModelMetadata, Prediction

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
NPY = "application/x-npy"
#: what the built-in handler reads and writes, in the order ``*/*``-like Accept ranges try them
CONTENT_TYPES = (JSON, JSONLINES, CSV, NPY)
#: bodies of these types reach a user's ``input_fn``/``transform_fn`` as ``str``, as in SageMaker's toolkit
TEXT_TYPES = (JSON, CSV)
#: from this many bytes on, JSON Lines and CSV bodies try the fast path (its checks cost more than they save below)
_FAST_PATH_BYTES = 32 * 1024
_NPY_MAGIC = b"\x93NUMPY"


class RequestError(Exception):
    """A request the server answers with ``status`` (4xx) and ``message`` (one line, no traceback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    """``application/json`` from ``Application/JSON; charset=utf-8``; '' when there is no header."""
    return (header or "").partition(";")[0].strip().lower()


def choose_accept(header: str | None, default: str) -> str:
    """The response type for an ``Accept`` header: its ranges by quality (then in order), the first one of
    :data:`CONTENT_TYPES` matches; no header, or ``*/*``, gives ``default``. Raises :class:`RequestError` 406."""
    if not header or not header.strip():
        return default
    ranges = []
    for position, part in enumerate(header.split(",")):
        name, *parameters = part.split(";")
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # an unreadable quality: the range is not offered
        name = name.strip().lower()
        if name and quality > 0:
            ranges.append((-quality, position, name))
    for _, _, name in sorted(ranges):
        if name == "*/*":
            return default
        if name in CONTENT_TYPES:
            return name
        if name.endswith("/*"):
            family = [t for t in (default, *CONTENT_TYPES) if t.startswith(name[:-1])]
            if family:
                return family[0]
    raise _not_acceptable(header)


def _not_acceptable(accept: str) -> RequestError:
    return RequestError(406, f"Accept {accept!r} names no type this server writes: accept one of "
                             f"{', '.join(CONTENT_TYPES)}.")


def custom_attributes(header: str | None) -> dict[str, str]:
    """``X-Amzn-SageMaker-Custom-Attributes`` as key -> value: ``key=value`` pairs separated by commas or semicolons
    (keys lower-cased; pairs without ``=`` are ignored, since the header is the caller's to use freely)."""
    pairs = {}
    for part in (header or "").replace(";", ",").split(","):
        key, equals, value = part.partition("=")
        if equals and key.strip():
            pairs[key.strip().lower()] = value.strip()
    return pairs


# ---- decoding --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Observations:
    """A decoded request: ``values`` float32 (batch, *shape), all finite; ``action`` the body's ``"action"`` key
    (``"greedy"``/``"sample"``) when a JSON object gave one."""

    values: np.ndarray
    action: str | None = None


def decode(body: bytes | str, content_type: str, shape: tuple[int, ...] | None) -> Observations:
    """Read the observations of a request body of ``content_type`` (a media type, see :func:`media_type`).

    :param shape: the observation shape; None accepts any numeric array (a user's model), batch dimension first.
    :raises RequestError: 415 for a type not in :data:`CONTENT_TYPES`, 400 for a body that is not what it should be.
    """
    data = body.encode("utf-8") if isinstance(body, str) else body
    if content_type == JSON:
        return _decode_json(data, shape)
    if content_type == JSONLINES:
        return Observations(_decode_jsonlines(data, shape))
    if content_type == CSV:
        return Observations(_decode_csv(data, shape))
    if content_type == NPY:
        return Observations(_decode_npy(data, shape))
    raise unsupported_content_type(content_type)


def unsupported_content_type(content_type: str) -> RequestError:
    """The 415 for a media type the server does not read."""
    return RequestError(415, f"Content-Type {content_type or '(none)'!r} is not one this server reads: send one of "
                             f"{', '.join(CONTENT_TYPES)}.")


def _describe_shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _numbers(data: object, where: str) -> np.ndarray:
    """Nested lists of JSON numbers as float32 (beyond float32's range they become infinite, for :func:`_finite` to
    refuse); anything else (text, booleans, nulls, uneven lists) is a 400 saying what it holds."""
    try:
        values = np.array(data, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        values = None  # uneven lists, text that is not a number, integers beyond any float: said below
    if values is not None:
        # The conversion also takes "1.5" and true: what JSON gave must be numbers.
        kind = np.asarray(data).dtype.kind
        if kind in "iuf":
            return values
    else:
        with warnings.catch_warnings():  # numpy 1.23 warns before making an object array of uneven lists
            warnings.simplefilter("ignore", np.VisibleDeprecationWarning)
            kind = np.asarray(data).dtype.kind
    if kind == "b":
        raise RequestError(400, f"{where} holds true/false: observation values must be numbers.")
    if kind in "US":
        raise RequestError(400, f"{where} holds text: observation values must be numbers, not strings.")
    raise RequestError(400, f"{where} is not a list of equally long lists of numbers (it holds lists of different "
                            "lengths, nulls, objects, or integers too large for a float).")


def _finite(values: np.ndarray, where: str) -> np.ndarray:
    """``values`` as float32; a NaN or an infinity (also a number beyond float32's range, which becomes one) is a 400
    naming the first observation that holds one."""
    values = values.astype(np.float32, copy=False)
    if not _all_finite(values):
        rows = np.isfinite(values.reshape(len(values), -1)).all(axis=1) if values.ndim > 1 else [False]
        which = f"{where}: observation {int(np.argmin(rows))}" if len(values) > 1 else where
        raise RequestError(400, f"{which} holds NaN, an infinity or a number beyond float32's range (3.4e38); "
                                "observations must be finite numbers.")
    return values


def _all_finite(values: np.ndarray) -> bool:
    if values.size <= 64:  # for a few numbers a Python loop costs less than numpy's reductions
        return all(map(math.isfinite, values.ravel().tolist()))
    return bool(np.isfinite(values).all())


def _batch(array: np.ndarray, shape: tuple[int, ...] | None, where: str) -> np.ndarray:
    """One observation of ``shape`` becomes a batch of one; a batch must have observations of ``shape``."""
    if shape is None:
        return array
    if array.shape == shape:
        return array[None]
    if array.shape[1:] == shape:
        return array
    if array.ndim == len(shape):
        got = _describe_shape(array.shape)
    elif array.ndim == len(shape) + 1:
        got = f"{array.shape[0]} of shape {_describe_shape(array.shape[1:])}"
    else:
        got = f"an array of shape {_describe_shape(array.shape)}"
    raise RequestError(400, f"{where}: expected observations of shape {_describe_shape(shape)} (one, or a list of "
                            f"them), got {got}.")


def _loads(data: bytes) -> object:
    """The JSON document of ``data`` (UTF-8, as RFC 8259 says: no encoding to detect); a 400 that says why it is not
    JSON. orjson reads it; Python's json reads what orjson refuses and json takes (NaN, integers beyond 64 bits, which
    the caller names) or says why it is not JSON, as it words it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise RequestError(400, f"The body is not JSON ({exc}).") from None


def _decode_json(data: bytes, shape: tuple[int, ...] | None) -> Observations:
    document = _loads(data)
    action = None
    where = "The JSON body"
    if isinstance(document, dict):
        unknown = sorted(set(document) - {"instances", "action"})
        if "instances" not in document or unknown:
            raise RequestError(400, 'A JSON object body needs "instances" (a list of observations) and may hold '
                                    f'"action" ("greedy" or "sample"); it has keys {sorted(document)}.')
        action = document.get("action")
        if action is not None:
            action = action_option(action, 'The body\'s "action"')
        document = document["instances"]
        where = 'The body\'s "instances"'
    values = _batch(_numbers(document, where), shape, where)
    return Observations(_finite(values, where), action)


def action_option(value: object, where: str) -> str:
    """``"greedy"`` or ``"sample"`` (any case) from a request; anything else is a 400 naming ``where``."""
    option = value.strip().lower() if isinstance(value, str) else None
    if option not in ("greedy", "sample"):
        raise RequestError(400, f"{where} is {value!r}: use greedy (the most likely action; the mean for continuous "
                                "actions) or sample (a draw from the policy's distribution).")
    return option


def _text(data: bytes, kind: str) -> bytes:
    """The body without its final newline (and trailing spaces); an empty body is a 400."""
    text = data.rstrip()
    if not text:
        raise RequestError(400, f"The body is empty: send one observation per {kind}.")
    return text


def _no_empty_line(text: bytes, kind: str) -> None:
    """An empty line in the middle is a 400 (a line of spaces is left to the reader, which finds nothing to read in
    it); checked before the exact readers only, since a fast path reads no text that has one."""
    gaps = [at for at in (text.find(b"\n\n"), text.find(b"\n\r\n")) if at >= 0]
    if gaps:
        number = text.count(b"\n", 0, min(gaps)) + 2
        raise RequestError(400, f"{kind.capitalize()} {number} is empty: send one observation per {kind}.")


def _decode_jsonlines(data: bytes, shape: tuple[int, ...] | None) -> np.ndarray:
    text = _text(data, "line")
    if shape is not None and len(shape) == 1 and len(text) >= _FAST_PATH_BYTES:
        values = _read_flat_json_lines(text, text.count(b"\n") + 1, shape[0])
        if values is not None:
            return values
    _no_empty_line(text, "line")
    lines = text.split(b"\n")
    try:
        # One parse of all lines as a JSON array; the line-by-line reading below only runs to name a bad line.
        document = _loads(b"[" + b",".join(lines) + b"]")
    except RequestError:
        document = None
    if isinstance(document, list) and len(document) == len(lines):
        try:
            values = _numbers(document, "The body")
            if shape is None or values.shape[1:] == shape:
                return _finite(values, "The body")
        except RequestError:
            pass
    for number, line in enumerate(lines, 1):
        where = f"Line {number}"
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise RequestError(400, f"{where} is not JSON ({exc}).") from None
        if not isinstance(value, list):
            raise RequestError(400, f"{where} holds {_JSON_KINDS.get(type(value), 'a value')}, not an observation (a list"
                                    f"{'' if shape is None else ' of shape ' + _describe_shape(shape)}).")
        array = _numbers(value, where)
        if shape is not None and array.shape != shape:
            raise RequestError(400, f"{where}: expected an observation of shape {_describe_shape(shape)}, got "
                                    f"{_describe_shape(array.shape)}.")
        _finite(array[None], where)
    # Every line is an observation of the right shape on its own: the lines disagree with each other.
    raise RequestError(400, "The lines hold observations of different shapes: every line must be one observation "
                            "of the same shape.")


_JSON_KINDS = {dict: "an object", str: "a string", int: "a number", float: "a number", bool: "true/false",
               type(None): "null"}


#: what is deleted from lines of numbers to leave their skeleton of brackets, commas and newlines
_NUMBER_BYTES = b"0123456789+-.eE \t\r"


def _skeleton_is(text: bytes, line: bytes, count: int) -> bool:
    """Whether ``text`` is ``count`` lines that each hold ``line``'s brackets, commas and newline once their
    numbers and white space are deleted (so it holds nothing else: no letters, quotes or other brackets)."""
    return text.translate(None, _NUMBER_BYTES) == (line * count)[:-1]


def _flat_numbers(document: bytes, count: int, width: int) -> np.ndarray | None:
    """``document``, a JSON list of ``count`` x ``width`` numbers, as float32 (count, width) in one orjson parse;
    None when orjson cannot read it (a spelling JSON refuses, such as ``1.``, ``.5``, ``+1`` or ``01``; an empty
    value; an integer beyond 64 bits) or a number is not finite as a float32: the caller then reads it exactly."""
    try:
        numbers = orjson.loads(document)
    except orjson.JSONDecodeError:
        return None
    # As the exact path converts: each number as Python reads it (a float64, an integer), then float32.
    values = np.array(numbers, dtype=np.float32)
    return values.reshape(count, width) if _all_finite(values) else None


def _read_flat_json_lines(text: bytes, count: int, width: int) -> np.ndarray | None:
    """``count`` lines that are each ``[n, ..., n]`` of ``width`` numbers, as one flat JSON list; None when the lines
    have another form (a nested list, an object, padding beside the brackets)."""
    # Every newline stands between "]" and "[", and the skeleton has no other bracket and width - 1 commas a line.
    if not (text.startswith(b"[") and text.endswith(b"]") and text.count(b"]\n[") == count - 1
            and _skeleton_is(text, b"[" + b"," * (width - 1) + b"]\n", count)):
        return None
    return _flat_numbers(text.replace(b"]\n[", b","), count, width)


def _decode_csv(data: bytes, shape: tuple[int, ...] | None) -> np.ndarray:
    text = _text(data, "row")
    if shape is None:
        shape = (text.split(b"\n", 1)[0].count(b",") + 1,)
    width = math.prod(shape)
    if len(text) >= _FAST_PATH_BYTES:
        count = text.count(b"\n") + 1
        if _skeleton_is(text, b"," * (width - 1) + b"\n", count):
            values = _flat_numbers(b"[" + text.replace(b"\n", b",") + b"]", count, width)
            if values is not None:
                return values.reshape((count, *shape))
    _no_empty_line(text, "row")
    rows = text.split(b"\n")
    table = []
    for number, row in enumerate(rows, 1):
        fields = row.split(b",")
        if len(fields) != width:
            raise RequestError(400, f"Row {number} has {len(fields)} values, expected {width} (one observation of "
                                    f"shape {_describe_shape(shape)} per row, no header).")
        try:
            table.append([float(field) for field in fields])
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise RequestError(400, f"Row {number}: {bad.strip().decode('utf-8', 'replace')[:40]!r} is not a number "
                                    "(rows hold numbers only, no header).") from None
    return _finite(np.asarray(table, dtype=np.float32).reshape((len(rows), *shape)), "The CSV body")


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _decode_npy(data: bytes, shape: tuple[int, ...] | None) -> np.ndarray:
    if not data.startswith(_NPY_MAGIC):
        raise RequestError(400, "The body is not a .npy array (it does not start with numpy's magic \\x93NUMPY): "
                                "send the bytes np.save writes.")
    try:
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RequestError(400, "The .npy body holds an object array, which would need unpickling, and pickles "
                                    "are refused: send a numeric array (float32).") from None
        raise RequestError(400, f"The .npy body cannot be read ({exc}).") from None
    except Exception as exc:  # any other failure to parse untrusted bytes is the body's fault
        raise RequestError(400, f"The .npy body cannot be read ({type(exc).__name__}: {exc}).") from None
    where = "The .npy body"
    if array.dtype.kind not in "iuf":
        raise RequestError(400, f"{where} has dtype {array.dtype}: send numbers (float32).")
    return _finite(_batch(array, shape, where), where)


# ---- encoding --------------------------------------------------------------------------------------------------
#: orjson writes a numpy array's numbers natively: each float32 as the shortest text that reads back as the same
#: float32 (and each float64 as its own shortest text), integers as integers
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: how JSON writes numbers that are not finite (as Python's json module does; other readers may refuse them)
_NON_FINITE = {"nan": b"NaN", "inf": b"Infinity", "-inf": b"-Infinity"}


def _dumps(part: np.ndarray) -> bytes:
    """orjson's JSON of a numeric array (no spaces; NaN and infinities as null, the only letters it can hold)."""
    return orjson.dumps(np.ascontiguousarray(part), option=_NUMPY)


def _number_texts(part: np.ndarray) -> list[bytes]:
    """Every number of ``part``, flattened, as its JSON text, NaN and infinities as JSON's NaN/Infinity/-Infinity."""
    flat = np.ravel(part)
    texts = _dumps(flat)[1:-1].split(b",")
    for at in np.flatnonzero(~np.isfinite(flat)).tolist():
        texts[at] = _NON_FINITE[str(float(flat[at]))]
    return texts


def _entries(part: np.ndarray, separator: bytes) -> list[bytes]:
    """Each observation's entry of ``part`` ((B,) or (B, n)) without brackets: its number, or its n numbers joined
    by ``separator``."""
    if not len(part):
        return []
    text = _dumps(part)  # "[a,b]" or "[[a,b],[c,d]]": only the separators to change and the entries to cut
    if b"null" in text:  # rare: the entries are made from the numbers' texts one by one
        texts = _number_texts(part)
        if part.ndim == 1:
            return texts
        width = part.shape[1]
        return [separator.join(texts[at:at + width]) for at in range(0, len(texts), width)]
    if part.ndim == 1:
        return text[1:-1].split(b",")
    if separator != b",":
        text = text.replace(b",", separator)
    return text[2:-2].split(b"]" + separator + b"[")


def _json_list(part: np.ndarray) -> bytes:
    """``[e_0, e_1, ...]``: the JSON list of ``part``'s entries, one per observation."""
    text = _dumps(part)
    if b"null" not in text:
        return text.replace(b",", b", ")
    entries = _entries(part, b", ")
    return b"[" + b", ".join(entries if part.ndim == 1 else [b"[" + entry + b"]" for entry in entries]) + b"]"


def _template(pieces: Sequence[bytes]) -> bytes:
    """``pieces[0] %s pieces[1] %s ... pieces[-1]``, the pieces' own % escaped."""
    return b"%s".join(piece.replace(b"%", b"%%") for piece in pieces)


class PredictionEncoder:
    """Writes a :class:`~rlframe.integrations.serving.model.Prediction` of one model as a response body.

    - JSON: ``{"predictions": [dist_0, ...], "actions": [a_0, ...], "outputs": {"<name>": [row_0, ...], ...}}``,
      the distribution being the action probabilities (the mean for continuous actions);
    - JSON Lines: that object for each observation alone, one per line;
    - CSV: one row per observation, the distribution's values then the action's;
    - NPY: the distributions, float32 (batch, A), or (batch, K) means.

    Each number is written as the shortest text that reads back as the same float32 (orjson's), the same text
    whatever batch the observation came in; the texts of whole arrays are made at once and put into per-row
    templates, with no Python work per number.
    """

    def __init__(self, metadata: "ModelMetadata") -> None:
        names = [json.dumps(output.name).encode() for output in metadata.outputs]
        # Around the parts (the distribution, the action, each output): '{"predictions": ', ', "actions": ', ...
        self._json = [b'{"predictions": ', b', "actions": ', b', "outputs": {' + names[0] + b": "]
        self._json += [b", " + name + b": " for name in names[1:]] + [b"}}"]
        # One observation's line: each part's entry in a list of one, a vector's entry being a list itself.
        vectors = [True, not metadata.discrete] + [output.width is not None for output in metadata.outputs]
        opening = [b"[[" if vector else b"[" for vector in vectors]
        closing = [b"]]" if vector else b"]" for vector in vectors]
        self._line = _template([self._json[0] + opening[0]]
                               + [closing[k - 1] + self._json[k] + opening[k] for k in range(1, len(vectors))]
                               + [closing[-1] + self._json[-1] + b"\n"])
        self._csv_row = b"%s,%s\n"

    def encode(self, prediction: "Prediction", accept: str) -> bytes:
        """The body for media type ``accept`` (one of :data:`CONTENT_TYPES`)."""
        parts = prediction.parts()
        if accept == JSON or (accept == JSONLINES and len(parts[0]) == 1):
            # One observation's line is its JSON object (the quicker way to write it), so the JSON Lines of a
            # batch and those of its observations one by one are the same bytes.
            body = b"".join(piece + _json_list(part) for piece, part in zip(self._json, parts)) + self._json[-1]
            return body if accept == JSON else body + b"\n"
        if accept == JSONLINES:
            return self._rows(self._line, parts, b", ")
        if accept == CSV:
            return self._rows(self._csv_row, parts[:2], b",")
        if accept == NPY:
            out = io.BytesIO()
            np.save(out, np.asarray(prediction.distribution, dtype=np.float32), allow_pickle=False)
            return out.getvalue()
        raise ValueError(f"cannot write {accept!r}")  # choose_accept only gives CONTENT_TYPES

    @staticmethod
    def _rows(template: bytes, parts: Sequence[np.ndarray], separator: bytes) -> bytes:
        """``template`` (one observation's text, a %s per part) once per observation, filled with its entries."""
        batch = len(parts[0])
        known: dict[int, list[bytes]] = {}  # the distribution is often also an output (or the action): one text
        values: list[bytes | None] = [None] * (batch * len(parts))
        for at, part in enumerate(parts):
            entries = known.get(id(part))
            if entries is None:
                entries = known[id(part)] = _entries(part, separator)
            values[at::len(parts)] = entries
        return template * batch % tuple(values)


def encode_array(value: object, accept: str) -> bytes:
    """Any numeric result (an array, nested lists, a number) as a body of ``accept``: JSON as it is, JSON Lines one
    line per first-axis entry, CSV one row per entry, NPY the array; for a user's model or predict_fn."""
    if accept == JSON:
        return json.dumps(value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value).encode()
    array = np.atleast_1d(np.asarray(value))
    if accept == NPY:
        out = io.BytesIO()
        np.save(out, array, allow_pickle=False)
        return out.getvalue()
    if accept == JSONLINES:
        return "".join(json.dumps(entry) + "\n" for entry in array.tolist()).encode()
    if accept == CSV:
        return "".join(",".join(map(repr, row)) + "\n" for row in array.reshape(len(array), -1).tolist()).encode()
    raise _not_acceptable(accept)
