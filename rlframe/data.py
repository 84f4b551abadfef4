"""Batch-RL datasets: play N gymnasium environments with given action probabilities and record a Coach CSV.

:class:`VectoredGymEnvironment` is the counterpart of the SageMaker batch-RL notebook's helper of the same
name, with its bugs fixed: time limits are kept (a truncated episode ends like a terminated one), sampling
is seeded, the steps mode works, and each call returns only its own rows. Its DataFrame has the columns
Coach's ``EpisodicExperienceReplay.load_csv`` reads::

    action,all_action_probabilities,episode_id,reward,cumulative_rewards,state_feature_0,...,state_feature_{D-1}

``rlframe-collect`` (:func:`collect_main`) writes such a CSV from the command line.
"""
from __future__ import annotations

import argparse
import json
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self, TypeGuard

import gymnasium as gym
import numpy as np
import pandas as pd

from rlframe.cli import run_cli
from rlframe.environments.gym_environment import GymVectorEnvironment, make_env_factory
from rlframe.errors import ParameterValueError
from rlframe.memories.dataset import sums_to_one
from rlframe.outputs.atomic import atomic_write_text
from rlframe.shipped import shipped_dir

#: The columns before the state features, in file order.
LEADING_COLUMNS = ["action", "all_action_probabilities", "episode_id", "reward", "cumulative_rewards"]

_OBSERVATION_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _flat(observation: Any) -> np.ndarray:
    return np.asarray(observation, dtype=np.float64).ravel()


def _check_probabilities(values: Any, num_actions: int, where: str) -> np.ndarray:
    """Validate one distribution over ``num_actions`` actions; returns it (num_actions,) divided by its sum.

    It must sum to 1 within the tolerance the dataset loader allows (:func:`~rlframe.memories.dataset.sums_to_one`);
    only that rounding is divided away. A sum further off is refused rather than rescaled: ``0.3,0.3`` is more likely
    a typo than a policy that picks each action half the time. ``where`` names its origin in error messages
    ('environment 3', 'file out.jsonl line 4', '--action-probs').
    """
    example = [round(1 / num_actions, 4)] * num_actions
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ParameterValueError(
            f"Action probabilities for {where} are {values!r}, not a list: give one probability per action, e.g. "
            f"{example}."
        )
    values = list(values)
    if len(values) != num_actions:
        raise ParameterValueError(
            f"Action probabilities for {where} are {values!r}: {len(values)} values, but the action space has "
            f"{num_actions} actions; give one probability per action."
        )
    for value in values:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise ParameterValueError(
                f"Action probabilities for {where} are {values!r}: {value!r} is not a number; give numbers from 0 to 1."
            )
        if not math.isfinite(value) or value < 0:
            raise ParameterValueError(
                f"Action probabilities for {where} are {values!r}: {value!r} is not a probability; "
                "give finite, non-negative numbers."
            )
    probabilities = np.asarray(values, dtype=np.float64)
    total = float(probabilities.sum())
    if total <= 0:
        raise ParameterValueError(
            f"Action probabilities for {where} are {values!r}: all zero; give at least one action a positive probability."
        )
    if not sums_to_one(probabilities):
        raise ParameterValueError(
            f"Action probabilities for {where} are {values!r}: they sum to {total:g}, not 1 (training refuses such a "
            f"dataset); give probabilities that sum to 1, e.g. {example}."
        )
    return probabilities / total


def read_transform_output(file_name: str) -> list[tuple[list[Any], str]]:
    """The first prediction of each line of a SageMaker batch-transform output file (JSON Lines).

    A line is ``{"SageMakerOutput": {"predictions": [[p0, ...]]}, ...}`` (``join_source="Input"``) or
    ``{"predictions": [[p0, ...]]}``; blank lines are skipped. Returns ``(prediction, 'file F line L')`` pairs,
    in file order, the second naming the line for error messages.
    """
    try:
        with open(file_name, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ParameterValueError(f"Cannot read batch-transform output {file_name!r}: {exc.strerror}.") from exc
    expected = 'expected {"predictions": [[p0, p1, ...]]} or {"SageMakerOutput": {"predictions": [[p0, p1, ...]]}}'
    out = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"file {file_name!r} line {number}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterValueError(f"Batch-transform output {where} is not valid JSON ({exc.msg}); {expected}.") from exc
        if isinstance(record, dict) and isinstance(record.get("SageMakerOutput"), dict):
            record = record["SageMakerOutput"]
        predictions = record.get("predictions") if isinstance(record, dict) else None
        if not isinstance(predictions, list) or not predictions:
            raise ParameterValueError(
                f"Batch-transform output {where} has no non-empty 'predictions' list: {text[:80]!r}; {expected}."
            )
        out.append((predictions[0], where))
    return out


class VectoredGymEnvironment:
    """N copies of one environment, played with given action probabilities to record a batch-RL dataset.

    :param registered_gym_env: a gymnasium id (``'CartPole-v0'``) or a ``'module:callable'`` level, looked up
        in the current directory, then in rlframe's shipped environments, then on ``sys.path``.
    :param num_of_envs: N.
    :param seed: copy i is first reset with seed ``seed + i``; actions are sampled from
        ``np.random.default_rng(seed)``. The same seed gives the same data.

    Copy i's episodes get the ids ``i + N * k`` (k = 0, 1, ... counts the copy's episodes), so ids are unique
    across copies and calls. Only discrete (``gymnasium.spaces.Discrete``) action spaces are supported.
    """

    def __init__(self, registered_gym_env: str, num_of_envs: int = 1, seed: int = 0) -> None:
        if not _is_count(num_of_envs) or num_of_envs < 1:
            raise ParameterValueError(f"num_of_envs={num_of_envs!r}: give a positive number of environments such as 100.")
        if not _is_count(seed) or seed < 0:
            raise ParameterValueError(f"seed={seed!r}: give a non-negative integer.")
        make = make_env_factory(GymVectorEnvironment(level=registered_gym_env), [Path.cwd(), shipped_dir("environments")],
                                render=False)
        self.level = registered_gym_env
        self.num_of_envs = int(num_of_envs)
        self._envs: list[gym.Env] = []
        try:
            for _ in range(self.num_of_envs):
                self._envs.append(make())
            self._check_spaces(self._envs[0])
            self._states = [_flat(env.reset(seed=int(seed) + i)[0]) for i, env in enumerate(self._envs)]
        except BaseException:
            self.close()
            raise
        space = self._envs[0].action_space
        assert isinstance(space, gym.spaces.Discrete)  # _check_spaces refused every other kind
        self.num_actions = int(space.n)
        self._first_action = int(space.start)
        #: Dimensions D of a flattened observation (the ``state_feature_*`` columns).
        self.state_dims = len(self._states[0])
        # Episodes each copy started before its current one (k in the episode id) and the current one's return
        # so far, which carries over between calls when the steps mode stops an episode midway.
        self._episode_counts = [0] * self.num_of_envs
        self._returns = [0.0] * self.num_of_envs
        self._rng = np.random.default_rng(seed)
        #: Returns of the episodes that ended during the last collect call, in row order.
        self.last_episode_returns: list[float] = []

    def _check_spaces(self, env: gym.Env) -> None:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ParameterValueError(
                f"Environment level {self.level!r} has the action space {env.action_space}: batch RL in rlframe "
                "(DDQN+BCQ, off-policy evaluation) needs discrete actions; use a level with a Discrete action space."
            )
        if not isinstance(env.observation_space, _OBSERVATION_SPACES):
            raise ParameterValueError(
                f"Environment level {self.level!r} has the observation space {env.observation_space}, which does not "
                "flatten into state_feature columns; use a level with array (Box) observations."
            )

    def get_environment_ids(self) -> list[str]:
        """``['environment_0', ..., 'environment_{N-1}']``."""
        return [f"environment_{i}" for i in range(self.num_of_envs)]

    def get_environment_states(self) -> dict[str, list[float]]:
        """Each copy's current observation, flattened to D floats, by environment id."""
        return {env_id: state.tolist() for env_id, state in zip(self.get_environment_ids(), self._states)}

    def _new_episode(self, i: int) -> None:
        self._states[i] = _flat(self._envs[i].reset()[0])
        self._episode_counts[i] += 1
        self._returns[i] = 0.0

    def reset_all_envs(self) -> None:
        """Start a new episode in every copy (running episodes are abandoned; their ids are not reused)."""
        for i in range(self.num_of_envs):
            self._new_episode(i)

    def dump_environment_states(self, dir_path: str, file_name: str) -> str:
        """Write the current observations as JSON Lines, one array of D floats per copy in id order (a batch
        transform's input), atomically; returns the file's path."""
        path = os.path.join(dir_path, file_name)
        atomic_write_text(path, "".join(json.dumps(state.tolist()) + "\n" for state in self._states))
        return path

    def _distributions(self, action_probs: Any, file_name: str | None) -> list[np.ndarray]:
        if (action_probs is None) == (file_name is None):
            raise ParameterValueError(
                "Give exactly one of action_probs (one list of action probabilities per environment) and file_name "
                "(a batch-transform output file)."
            )
        if file_name is not None:
            sources = read_transform_output(file_name)
            if len(sources) != self.num_of_envs:
                raise ParameterValueError(
                    f"Batch-transform output {file_name!r} has {len(sources)} predictions but there are "
                    f"{self.num_of_envs} environments; it needs one line per environment, in environment order."
                )
        else:
            if isinstance(action_probs, np.ndarray):
                action_probs = action_probs.tolist()
            if isinstance(action_probs, (str, bytes)) or not isinstance(action_probs, Sequence) or not action_probs:
                raise ParameterValueError(
                    f"action_probs={action_probs!r}: give one list of {self.num_actions} action probabilities per "
                    "environment, or a single list for all of them."
                )
            if all(isinstance(value, numbers.Number) for value in action_probs):
                action_probs = [action_probs] * self.num_of_envs
            elif len(action_probs) != self.num_of_envs:
                raise ParameterValueError(
                    f"action_probs has {len(action_probs)} lists but there are {self.num_of_envs} environments; give one "
                    "list per environment, or a single list of probabilities for all of them."
                )
            sources = [(probs, f"environment {i}") for i, probs in enumerate(action_probs)]
        return [_check_probabilities(probs, self.num_actions, where) for probs, where in sources]

    def collect_rollouts_with_given_action_probs(
        self, num_steps: int | None = None, num_episodes: int | None = None,
        action_probs: Sequence[Sequence[float]] | Sequence[float] | None = None, file_name: str | None = None,
    ) -> pd.DataFrame:
        """Play every copy with fixed action probabilities and return one row per step.

        :param num_steps: steps each copy plays (an episode may be left running; the next call continues it).
        :param num_episodes: episodes each copy finishes (the first continues the copy's running episode).
            Give exactly one of ``num_steps`` and ``num_episodes``.
        :param action_probs: one list of ``num_actions`` probabilities per copy (N lists), or a single list used
            by every copy.
        :param file_name: a SageMaker batch-transform output file (JSON Lines), one line per copy in id order,
            whose first prediction is the copy's probabilities. Give exactly one of ``action_probs`` and
            ``file_name``.

        Probabilities must be finite and non-negative and sum to 1 within 1e-3 (the tolerance training allows,
        :data:`~rlframe.memories.dataset.PROBABILITY_SUM_TOLERANCE`); that rounding is divided away, and any other
        sum is refused with a :class:`~rlframe.errors.ParameterValueError`. The rows (grouped by copy, in time
        order, so an episode's rows are contiguous) hold the sampled action, the normalised probabilities as a
        list literal (``"[0.5, 0.5]"``), the episode id, the reward, the episode's total reward on its last row
        (0.0 on the others; an episode ends when it terminates or is truncated by a time limit) and the
        observation the action was taken in (D ``state_feature_*`` columns). Only this call's rows are returned.
        """
        steps_mode = num_steps is not None
        if steps_mode == (num_episodes is not None):
            raise ParameterValueError("Give exactly one of num_steps (steps per environment) and num_episodes "
                                      "(episodes per environment).")
        count = num_steps if steps_mode else num_episodes
        if not _is_count(count) or count < 1:
            name = "num_steps" if steps_mode else "num_episodes"
            raise ParameterValueError(f"{name}={count!r}: give a positive integer.")
        distributions = self._distributions(action_probs, file_name)
        actions: list[int] = []
        probability_texts: list[str] = []
        episode_ids: list[int] = []
        rewards: list[float] = []
        cumulative: list[float] = []
        states: list[np.ndarray] = []
        self.last_episode_returns = []
        for i, (env, probabilities) in enumerate(zip(self._envs, distributions)):
            text = repr([float(p) for p in probabilities])
            steps = ended = 0
            while (steps < count) if steps_mode else (ended < count):
                action = self._first_action + int(self._rng.choice(self.num_actions, p=probabilities))
                observation, reward, terminated, truncated, _ = env.step(action)
                self._returns[i] += float(reward)
                actions.append(action)
                probability_texts.append(text)
                episode_ids.append(i + self.num_of_envs * self._episode_counts[i])
                rewards.append(float(reward))
                states.append(self._states[i])
                steps += 1
                if terminated or truncated:
                    cumulative.append(self._returns[i])
                    self.last_episode_returns.append(self._returns[i])
                    ended += 1
                    self._new_episode(i)
                else:
                    cumulative.append(0.0)
                    self._states[i] = _flat(observation)
        columns: dict[str, Any] = dict(zip(LEADING_COLUMNS, (actions, probability_texts, episode_ids, rewards, cumulative)))
        features = np.stack(states)
        for d in range(self.state_dims):
            columns[f"state_feature_{d}"] = features[:, d]
        return pd.DataFrame(columns)

    def close(self) -> None:
        """Close every copy."""
        for env in self._envs:
            env.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlframe-collect", allow_abbrev=False,
        description="Play N copies of an environment with fixed action probabilities (a behaviour policy) and "
        "write the batch-RL dataset CSV that a BatchRLGraphManager preset loads.",
    )
    parser.add_argument("-lvl", "--level", required=True,
                        help="environment level: a gymnasium id such as CartPole-v0 or module:callable "
                        "(looked up in the current directory, then rlframe's shipped environments)")
    parser.add_argument("--num-envs", "--num_envs", dest="num_envs", type=int, default=1, metavar="N",
                        help="environment copies N; copy i's episodes get the ids i, i+N, i+2N, ... (default 1)")
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--episodes", type=int, metavar="N", help="whole episodes each copy plays")
    amount.add_argument("--steps", type=int, metavar="N", help="steps each copy plays (its last episode may be unfinished)")
    parser.add_argument("--seed", type=int, default=0,
                        help="copy i is reset with seed+i and actions are sampled with this seed (default 0)")
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--action-probs", "--action_probs", dest="action_probs", metavar="P0,P1,...",
                        help="action probabilities used by every copy, comma-separated (default: uniform)")
    policy.add_argument("--action-probs-file", "--action_probs_file", dest="action_probs_file", metavar="FILE",
                        help="SageMaker batch-transform output (JSON Lines), one line of predictions per copy")
    parser.add_argument("-o", "--output", required=True, metavar="CSV", help="CSV file to write (replaced atomically)")
    return parser


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' if count != 1 else ''}"


def _collect(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    for flag, value in (("--num-envs", args.num_envs), ("--episodes", args.episodes), ("--steps", args.steps)):
        if value is not None and value < 1:
            raise ParameterValueError(f"{flag} {value}: give a positive integer.")
    if args.seed < 0:
        raise ParameterValueError(f"--seed {args.seed}: give a non-negative integer.")
    probabilities: list[float] | None = None
    if args.action_probs is not None:
        try:
            probabilities = [float(p) for p in args.action_probs.split(",")]
        except ValueError as exc:
            raise ParameterValueError(
                f"--action-probs {args.action_probs!r}: give comma-separated numbers such as 0.5,0.5."
            ) from exc
    with VectoredGymEnvironment(args.level, args.num_envs, args.seed) as envs:
        if probabilities is None and args.action_probs_file is None:
            probabilities = [1.0 / envs.num_actions] * envs.num_actions
        elif probabilities is not None:
            # Checked here so messages name the option rather than 'environment 0'.
            probabilities = _check_probabilities(probabilities, envs.num_actions, "--action-probs").tolist()
        frame = envs.collect_rollouts_with_given_action_probs(
            num_steps=args.steps, num_episodes=args.episodes, action_probs=probabilities, file_name=args.action_probs_file,
        )
        returns = envs.last_episode_returns
        unfinished = frame["episode_id"].nunique() - len(returns)
    try:
        atomic_write_text(args.output, frame.to_csv(index=False))
    except OSError as exc:
        raise ParameterValueError(f"Cannot write {args.output!r}: {exc.strerror}; choose another -o path.") from exc
    average = f"{sum(returns) / len(returns):.4g}" if returns else "n/a (no episode finished)"
    extra = f" and {unfinished:,} unfinished" if unfinished else ""
    print(f"wrote {len(frame):,} rows, {_plural(len(returns), 'episode')}{extra} ({_plural(args.num_envs, 'environment')}) "
          f"to {args.output}; average return {average}")
    return 0


def collect_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``rlframe-collect``; returns the exit status (2 for a user mistake)."""
    return run_cli(_collect, argv)

