"""Batch-RL datasets: a CSV of logged episodes, read into transitions and split by episode.

A preset names its dataset as Coach's did::

    agent_params.memory.load_memory_from_file_path = CsvDataset('cartpole_dataset.csv', is_episodic=True)

The CSV has one row per logged step: ``action`` (an integer), ``all_action_probabilities`` (the behaviour
policy's probabilities as a list literal, ``"[0.5, 0.5]"``), ``episode_id``, ``reward`` and
``state_feature_0 .. state_feature_{D-1}`` (the observation before the step); any other column (the
notebook's ``cumulative_rewards``, Coach's tutorial ``episode_name`` and ``transition_number``) is ignored.
Rows are grouped by ``episode_id`` (episodes in order of first appearance, rows in file order), and
consecutive rows t, t+1 of an episode make one transition (state_t, action_t, reward_t, state_{t+1}): an
episode of k rows gives k - 1 transitions and its last row only supplies the final next state (coach.md
section 5). With ``is_episodic`` the last transition of every episode is terminal.

Coach's own datasets end each episode with a *state-only* row: ``action``, ``all_action_probabilities`` and
``reward`` empty, only the state filled in. Read as Coach reads it, that row is the episode's last row: it
supplies the final next state and makes no transition of its own. Only an episode's last row may be state-only.
"""
from __future__ import annotations

import ast
import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlframe.errors import ParameterValueError, RlframeError
from rlframe.memories.experience_replay import TransitionBatch
from rlframe.outputs.atomic import atomic_write_npz
from rlframe.parameters import Parameters
from rlframe.spaces import DiscreteActionSpace, SpacesDefinition

REQUIRED_COLUMNS = ("action", "all_action_probabilities", "episode_id", "reward")
#: the columns of a row's step; a row with all of them empty holds only a state (Coach's episode-closing row)
STEP_COLUMNS = ("action", "all_action_probabilities", "reward")
STATE_PREFIX = "state_feature"
#: how far the logged probabilities of a row may sum from 1 (they are written with a few digits at times)
PROBABILITY_SUM_TOLERANCE = 1e-3


class DatasetError(RlframeError):
    """A dataset file that is missing or malformed."""


class CsvDataset(Parameters):
    """A batch-RL dataset in a CSV file.

    :param filepath: the CSV file. A relative path is looked up in the current directory first, then beside
        the preset; the ``dataset`` hyperparameter (``--dataset path.csv``) replaces it.
    :param is_episodic: the last transition of each episode is terminal (False: every episode was cut).
    """

    def __init__(self, filepath: str, is_episodic: bool = True) -> None:
        self.filepath = filepath
        self.is_episodic = is_episodic


class PickledReplayBuffer(Parameters):
    """Coach's pickled-episodes dataset: refused, because unpickling a file runs code from it.

    :param filepath: the pickle file Coach would load; constructing this object fails with a line saying to
        write the episodes as a CSV and use ``CsvDataset``.
    """

    def __init__(self, filepath: str) -> None:
        raise ParameterValueError(
            f"PickledReplayBuffer({filepath!r}): rlframe does not load pickled replay buffers (unpickling runs code "
            "from the file). Write the episodes as a CSV and use CsvDataset (see rlframe.data)."
        )


@dataclass
class TransitionDataset:
    """T transitions of E episodes, each episode's transitions contiguous and in time order.

    obs (T, D) float32, action (T,) int64, reward (T,) float32, next_obs (T, D) float32, terminated (T,)
    bool, behaviour_probs (T, A) float64 (the logging policy's probabilities at obs), episode_id (T,)
    int64 numbered 0..E-1 in order.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    behaviour_probs: np.ndarray
    episode_id: np.ndarray

    def __len__(self) -> int:
        return len(self.action)

    @property
    def num_episodes(self) -> int:
        return int(self.episode_id[-1]) + 1 if len(self) else 0

    def batch(self, rows: np.ndarray) -> TransitionBatch:
        """The transitions ``rows`` (B,) as a replay batch (none truncated: a dataset episode's end is its last row)."""
        return TransitionBatch(self.obs[rows], self.action[rows], self.reward[rows], self.next_obs[rows],
                               self.terminated[rows], np.zeros(len(rows), dtype=bool))

    def episodes(self, chosen: np.ndarray) -> TransitionDataset:
        """The transitions of the episodes ``chosen`` (episode numbers, in the order given), renumbered 0.."""
        starts = np.searchsorted(self.episode_id, np.arange(self.num_episodes + 1))
        if len(chosen):
            rows = np.concatenate([np.arange(starts[e], starts[e + 1]) for e in chosen])
        else:
            rows = np.zeros(0, np.int64)
        lengths = np.diff(starts)[chosen]
        return TransitionDataset(
            self.obs[rows], self.action[rows], self.reward[rows], self.next_obs[rows], self.terminated[rows],
            self.behaviour_probs[rows], np.repeat(np.arange(len(chosen)), lengths),
        )


class TransitionLog:
    """Heatup and training transitions of N environment copies, kept as whole episodes: a batch-RL dataset
    generated inside a run. Attach it to an agent's ``transition_observers``; the agent reports the
    probabilities it acted with, so the dataset's behaviour probabilities are the true ones."""

    def __init__(self) -> None:
        self._open: dict[int, list[tuple[Any, ...]]] = {}
        self._episodes: list[list[tuple[Any, ...]]] = []

    def __call__(self, env_index: np.ndarray, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
                 next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, probs: np.ndarray | None) -> None:
        if probs is None:
            raise ParameterValueError(
                "The data-generating agent does not report its action probabilities; batch RL datasets need a "
                "discrete-action agent (DQN, DDQN) or random heatup."
            )
        for j, i in enumerate(env_index):
            self._open.setdefault(int(i), []).append(
                (obs[j].ravel(), int(action[j]), float(reward[j]), next_obs[j].ravel(), bool(terminated[j]), probs[j]))
            if terminated[j] or truncated[j]:
                self._episodes.append(self._open.pop(int(i)))

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    def dataset(self) -> TransitionDataset:
        """The finished episodes, in the order they finished (episodes still running are left out)."""
        if not self._episodes:
            raise DatasetError("The data generation finished no episode: give it more steps.")
        rows = [t for episode in self._episodes for t in episode]
        obs, action, reward, next_obs, terminated, probs = zip(*rows)
        return TransitionDataset(
            np.stack(obs).astype(np.float32), np.asarray(action, dtype=np.int64), np.asarray(reward, dtype=np.float32),
            np.stack(next_obs).astype(np.float32), np.asarray(terminated), np.stack(probs).astype(np.float64),
            np.repeat(np.arange(len(self._episodes)), [len(e) for e in self._episodes]),
        )


def save_dataset(data: TransitionDataset, path: str) -> None:
    """Write ``data``'s arrays to ``path`` (.npz) atomically."""
    atomic_write_npz(path, {f.name: getattr(data, f.name) for f in fields(TransitionDataset)})


def load_dataset(path: str) -> TransitionDataset:
    """Read a dataset written by :func:`save_dataset`."""
    with np.load(path) as arrays:
        return TransitionDataset(**{f.name: arrays[f.name] for f in fields(TransitionDataset)})


def minibatch_rows(count: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """One shuffled pass over ``count`` rows as (ceil(count / batch_size), batch_size) indices.

    The last minibatch is topped up with rows from the start of the pass, so every minibatch has
    ``batch_size`` rows (the loss graphs have static shapes) and every row is used at least once.
    """
    return np.resize(rng.permutation(count), (-(-count // batch_size), batch_size))


def resolve_dataset_path(filepath: str, preset_dir: Path | None) -> str:
    """An absolute path for ``filepath``: as given when absolute, else the current directory's file, else the
    one beside the preset."""
    if not isinstance(filepath, (str, os.PathLike)) or not str(filepath):
        raise ParameterValueError(
            f"CsvDataset filepath = {filepath!r}: give the path of a CSV file, e.g. CsvDataset('cartpole_dataset.csv')."
        )
    path = Path(filepath)
    candidates = [path] if path.is_absolute() else [Path.cwd() / path] + ([preset_dir / path] if preset_dir else [])
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    raise DatasetError(
        f"Dataset {str(filepath)!r} was not found (looked for {', '.join(str(c) for c in candidates)}). "
        "Collect one with rlframe-collect, or pass --dataset path.csv."
    )


def _line(row: int) -> int:
    return row + 2  # the header is line 1


def _numeric(frame: pd.DataFrame, column: str, path: str, integer: bool, skip: np.ndarray | None = None) -> np.ndarray:
    """``frame[column]`` as float64 (R,); rows where ``skip`` (R,) is true are not checked and read 0."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if integer:
        bad |= np.isfinite(values) & (values != np.round(values))
    if skip is not None:
        bad &= ~skip
        values[skip] = 0.0
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise DatasetError(
            f"{path}, line {_line(row)}, column {column!r}: {frame[column].iloc[row]!r} is not {kind}. "
            f"Fix the row or remove it ({int(bad.sum())} such row(s) in the file)."
        )
    return values


def sums_to_one(probs: np.ndarray) -> bool:
    """Whether a distribution over the actions sums to 1 within :data:`PROBABILITY_SUM_TOLERANCE`.

    The one such check: loading a dataset and ``rlframe-collect`` (which writes one) both use it, so collect accepts
    exactly the probabilities training accepts instead of quietly rescaling a mistyped policy.
    """
    return abs(float(np.sum(probs)) - 1.0) <= PROBABILITY_SUM_TOLERANCE


def _probabilities(frame: pd.DataFrame, path: str, num_actions: int, skip: np.ndarray) -> np.ndarray:
    """The rows' behaviour probabilities (R, A); rows where ``skip`` (R,) is true are not read and get a uniform
    distribution, which no transition uses."""
    column = "all_action_probabilities"
    out = np.full((len(frame), num_actions), 1.0 / num_actions)
    for row, text in enumerate(frame[column].tolist()):
        if skip[row]:
            continue
        where = f"{path}, line {_line(row)}, column {column!r}"
        try:
            probs = ast.literal_eval(text) if isinstance(text, str) else text
            probs = np.asarray(probs, dtype=np.float64)
        except (ValueError, SyntaxError, TypeError) as exc:
            raise DatasetError(
                f"{where}: {text!r} is not a list of probabilities ({type(exc).__name__}). "
                "Write them as a list literal such as \"[0.5, 0.5]\"."
            ) from None
        if probs.shape != (num_actions,):
            raise DatasetError(
                f"{where}: {text!r} has {probs.size} value(s); the action space has {num_actions} actions, so each "
                f"row needs {num_actions} probabilities."
            )
        if not np.isfinite(probs).all() or (probs < 0).any():
            raise DatasetError(f"{where}: {text!r} has a negative or non-finite probability.")
        if not sums_to_one(probs):
            raise DatasetError(
                f"{where}: the probabilities {text} sum to {probs.sum():.6g}, not 1. Log the behaviour policy's "
                "full distribution over the actions."
            )
        out[row] = probs / probs.sum()
    return out


def load_csv_dataset(dataset: CsvDataset, path: str, spaces: SpacesDefinition) -> TransitionDataset:
    """Read and check the CSV at ``path`` (``dataset``'s resolved file) against ``spaces``.

    Every malformed value raises :class:`DatasetError` naming the file, line and column; episodes of one
    row (no transition) are skipped with a warning that counts them.
    """
    if not isinstance(spaces.action, DiscreteActionSpace):
        raise ParameterValueError(
            f"Batch RL needs a discrete action space; the spaces definition has {spaces.action!r}."
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Dataset {path} is not a readable CSV file ({str(exc).splitlines()[0]}).") from None
    state_columns = [c for c in frame.columns if c.startswith(STATE_PREFIX)]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing or not state_columns:
        missing += [] if state_columns else [f"{STATE_PREFIX}_0..."]
        raise DatasetError(
            f"Dataset {path} has no column(s) {', '.join(repr(c) for c in missing)} (it has: {', '.join(frame.columns)}). "
            f"A dataset needs {', '.join(REQUIRED_COLUMNS)} and {STATE_PREFIX}_0 .. {STATE_PREFIX}_<D-1>."
        )
    observation_size = spaces.observation_size
    if len(state_columns) != observation_size:
        raise DatasetError(
            f"Dataset {path} has {len(state_columns)} {STATE_PREFIX} columns; the spaces definition "
            f"({spaces.state['observation']!r}) has {observation_size} observation features. Make them agree."
        )
    if frame.empty:
        raise DatasetError(f"Dataset {path} has a header but no rows.")
    num_actions = spaces.action.num_actions
    state_only = np.logical_and.reduce([frame[c].str.strip().to_numpy() == "" for c in STEP_COLUMNS])
    action = _numeric(frame, "action", path, integer=True, skip=state_only)
    outside = (action < 0) | (action >= num_actions)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DatasetError(
            f"{path}, line {_line(row)}, column 'action': {frame['action'].iloc[row]} is outside the action space "
            f"(actions 0..{num_actions - 1})."
        )
    reward = _numeric(frame, "reward", path, integer=False, skip=state_only)
    states = np.stack([_numeric(frame, c, path, integer=False) for c in state_columns], axis=1)
    probs = _probabilities(frame, path, num_actions, state_only)
    taken = probs[np.arange(len(frame)), action.astype(np.int64)]
    if (taken <= 0).any():
        row = int(np.flatnonzero(taken <= 0)[0])
        raise DatasetError(
            f"{path}, line {_line(row)}: action {int(action[row])} has behaviour probability 0 in "
            f"{frame['all_action_probabilities'].iloc[row]}; off-policy evaluation divides by it. Log the "
            "probabilities the behaviour policy actually used."
        )
    return _transitions(frame["episode_id"].to_numpy(), states, action.astype(np.int64), reward, probs,
                        bool(dataset.is_episodic), path, state_only)


def _transitions(episode: np.ndarray, states: np.ndarray, action: np.ndarray, reward: np.ndarray,
                 probs: np.ndarray, is_episodic: bool, path: str, state_only: np.ndarray) -> TransitionDataset:
    """Pair consecutive rows of each episode (rows grouped by ``episode`` in order of first appearance).

    ``state_only`` (R,) marks rows with no step (Coach's closing rows); one may only end its episode."""
    _, first, codes = np.unique(episode, return_index=True, return_inverse=True)
    order_of_episode = np.argsort(np.argsort(first))  # episode number by first appearance
    codes = order_of_episode[codes]
    rows = np.argsort(codes, kind="stable")  # episodes one after another, each in file order
    codes = codes[rows]
    has_next = np.append(codes[1:] == codes[:-1], False)  # a row whose episode continues on the next one
    current = rows[has_next]
    following = rows[np.flatnonzero(has_next) + 1]
    early = current[state_only[current]]
    if len(early):
        row = int(early.min())
        raise DatasetError(
            f"{path}, line {_line(row)}: a row with empty action, all_action_probabilities and reward (only a "
            f"state) is followed by more rows of episode {episode[row]}. Only an episode's last row may hold just "
            "the final state; fill in the row's step or move it to the end of its episode."
        )
    counts = np.bincount(codes)
    single = int((counts == 1).sum())
    if single:
        warnings.warn(f"Dataset {path}: skipped {single} episode(s) of one row (an episode needs 2 rows per transition).",
                      stacklevel=3)
    if not len(current):
        raise DatasetError(f"Dataset {path} has no episode of 2 or more rows, so it has no transition.")
    episode_of = codes[has_next]
    last = np.append(episode_of[1:] != episode_of[:-1], True)
    _, renumbered = np.unique(episode_of, return_inverse=True)
    return TransitionDataset(
        obs=states[current].astype(np.float32), action=action[current], reward=reward[current].astype(np.float32),
        next_obs=states[following].astype(np.float32), terminated=last & is_episodic,
        behaviour_probs=probs[current], episode_id=renumbered.astype(np.int64),
    )


def split_episodes(data: TransitionDataset, train_to_eval_ratio: float, rng: np.random.Generator,
                   path: str) -> tuple[TransitionDataset, TransitionDataset]:
    """Shuffle the episodes (with ``rng``) and cut at the episode holding transition
    ``round(ratio * T)`` of the shuffled order: that episode and those before it train, the rest evaluate."""
    if not isinstance(train_to_eval_ratio, (int, float)) or not 0 < train_to_eval_ratio < 1:
        raise ParameterValueError(
            f"train_to_eval_ratio = {train_to_eval_ratio!r}: use a fraction strictly between 0 and 1, e.g. 0.8."
        )
    order = rng.permutation(data.num_episodes)
    lengths = np.bincount(data.episode_id)[order]
    cut_transition = min(round(train_to_eval_ratio * len(data)), len(data) - 1)
    cut = int(np.searchsorted(np.cumsum(lengths), cut_transition, side="right")) + 1
    if cut >= len(order):
        raise ParameterValueError(
            f"train_to_eval_ratio = {train_to_eval_ratio:g} leaves no evaluation episodes in {path} "
            f"({data.num_episodes} episodes, {len(data)} transitions): lower it, or collect more episodes."
        )
    return data.episodes(order[:cut]), data.episodes(order[cut:])

