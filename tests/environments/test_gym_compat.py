"""Environments written for the old gym API run unchanged, with no gym installed (``import gym`` answered by
gymnasium) and with a real gym 0.26.2 (installed for these tests into a folder of their own, never the venv).

The fixture source folder is in the style of the SageMaker RL notebooks: a ``gym.Env`` subclass whose module
imports a sibling module at the top and another inside ``step()``, an observation-only ``reset()``, a 4-value
``step()`` that flags its own time limit with ``info['TimeLimit.truncated']``, ``seed()``, and an int32 Box
observation space with infinite bounds.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium
import numpy as np
import pandas as pd
import pytest

from rlframe.cli import train_main
from rlframe.environments.gym_compat import GymApiAdapter, install_gym_fallback, is_gym_fallback
from rlframe.environments.gym_environment import GymVectorEnvironment, make_env_factory

pytestmark = pytest.mark.integration

CSV_NAME = "worker_0.simple_rl_graph.main_level.main_level.agent_0.csv"

LAYOUT_MODULE = '''\
"""Shape of the corridor: imported by the environment module at its top."""
LENGTH = 6
MAX_STEPS = 25
'''

SCORING_MODULE = '''\
"""Rewards: imported by the environment inside step(), long after the preset was loaded."""


def reward_for(position, goal):
    return 1.0 if position == goal else -0.05
'''

ENV_MODULE = '''\
"""A corridor for the old gym API: walk right to reach the goal."""
import gym
import numpy as np
from gym import spaces
from gym.utils import seeding

from corridor_layout import LENGTH, MAX_STEPS


class CorridorEnv(gym.Env):
    metadata = {"render.modes": ["human", "rgb_array"]}

    def __init__(self):
        self.observation_space = spaces.Box(low=-np.inf, high=np.inf, shape=(2,), dtype=np.int32)
        self.action_space = spaces.Discrete(2)
        self.seed()

    def seed(self, seed=None):
        self.np_random, seed = seeding.np_random(seed)
        return [seed]

    def _observation(self):
        return np.array([self.position, LENGTH - 1 - self.position], dtype=np.int32)

    def reset(self):
        self.position = int(self.np_random.integers(0, 2))
        self.steps = 0
        return self._observation()

    def step(self, action):
        import corridor_scoring

        self.position = min(max(self.position + (1 if action == 1 else -1), 0), LENGTH - 1)
        self.steps += 1
        done = self.position == LENGTH - 1
        info = {}
        if not done and self.steps >= MAX_STEPS:
            done = True
            info["TimeLimit.truncated"] = True
        return self._observation(), corridor_scoring.reward_for(self.position, LENGTH - 1), done, info

    def render(self, mode="human"):
        frame = np.zeros((8, 8 * LENGTH, 3), dtype=np.uint8)
        frame[:, 8 * self.position:8 * (self.position + 1)] = 255
        return frame
'''

BROKEN_MODULE = '''\
"""Environments that return the wrong things."""
import gym
import numpy as np
from gym import spaces


class _Base(gym.Env):
    def __init__(self):
        self.observation_space = spaces.Box(low=-1.0, high=1.0, shape=(2,))
        self.action_space = spaces.Discrete(2)

    def reset(self):
        return np.zeros(2)


class ThreeValueStep(_Base):
    def step(self, action):
        return np.zeros(2), 1.0, False


class TextReset(_Base):
    def reset(self):
        return "ready"


class NoReturnReset(_Base):
    def reset(self):
        self.position = 0
'''

# The Mountain Car notebook's way: gym's own classic-control environment in gym's own TimeLimit.
PATIENT_MODULE = '''\
from gym.envs.classic_control import MountainCarEnv
from gym.wrappers.time_limit import TimeLimit


def PatientMountainCar():
    return TimeLimit(MountainCarEnv(), max_episode_steps=10000)
'''

# Its first import is gym's (the subprocess test shows a fresh process answers it before any rl_coach import).
PRESET = '''\
import gym
from rl_coach.agents.dqn_agent import DQNAgentParameters
from rl_coach.core_types import EnvironmentEpisodes, EnvironmentSteps
from rl_coach.environments.gym_environment import GymVectorEnvironment
from rl_coach.graph_managers.basic_rl_graph_manager import BasicRLGraphManager
from rl_coach.graph_managers.graph_manager import ScheduleParameters
{prelude}
schedule_params = ScheduleParameters()
schedule_params.improve_steps = EnvironmentSteps(200)
schedule_params.steps_between_evaluation_periods = EnvironmentSteps(100)
schedule_params.evaluation_steps = EnvironmentEpisodes(1)
schedule_params.heatup_steps = EnvironmentSteps(50)
agent_params = DQNAgentParameters()
graph_manager = BasicRLGraphManager(agent_params=agent_params, env_params=GymVectorEnvironment(level={level!r}),
                                    schedule_params=schedule_params)
'''

# Registered the way old gym code does it, with the spec's own time limit and reward threshold.
REGISTER = '''
from gym.envs.registration import register

register(id="Corridor-v0", entry_point="corridor_env:CorridorEnv", max_episode_steps=12, reward_threshold=0.5)
'''

# Registered with the class itself, imported by the preset (whose folder leaves sys.path once it is loaded).
REGISTER_CLASS = '''
from gym.envs.registration import register
from corridor_env import CorridorEnv

register(id="CorridorClass-v0", entry_point=CorridorEnv, max_episode_steps=12, reward_threshold=0.5)
'''

FIXTURE_MODULES = ("corridor_env", "corridor_layout", "corridor_scoring", "broken_env", "patient_style")


def write_source_folder(root: Path) -> Path:
    """The notebook-style ``src/`` folder: environment modules and two presets; returns the folder."""
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "corridor_layout.py").write_text(LAYOUT_MODULE)
    (src / "corridor_scoring.py").write_text(SCORING_MODULE)
    (src / "corridor_env.py").write_text(ENV_MODULE)
    (src / "broken_env.py").write_text(BROKEN_MODULE)
    (src / "patient_style.py").write_text(PATIENT_MODULE)
    (src / "preset-corridor-dqn.py").write_text(PRESET.format(prelude="", level="corridor_env:CorridorEnv"))
    (src / "preset-corridor-registered.py").write_text(PRESET.format(prelude=REGISTER, level="Corridor-v0"))
    (src / "preset-corridor-class.py").write_text(PRESET.format(prelude=REGISTER_CLASS, level="CorridorClass-v0"))
    for name in ("ThreeValueStep", "TextReset", "NoReturnReset"):
        (src / f"preset-broken-{name}.py").write_text(PRESET.format(prelude="", level=f"broken_env:{name}"))
    return src


@contextlib.contextmanager
def restored_imports():
    """Leave sys.path and the fixture modules as they were: a run keeps its environment's folder importable
    for the rest of the process, which in pytest would outlive the test."""
    saved = list(sys.path)
    try:
        yield
    finally:
        sys.path[:] = saved
        for name in [n for n in sys.modules if n in FIXTURE_MODULES or n.startswith("rlframe_level_")]:
            del sys.modules[name]


@pytest.fixture
def fresh_imports():
    with restored_imports():
        yield


def train_in_process(preset: Path, experiment: Path, *extra: str) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = train_main(["-p", str(preset), "--seed", "0", "-ep", str(experiment), *extra])
    return code, stdout.getvalue()


@pytest.fixture(scope="session")
def real_gym(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding gym 0.26.2 (and gym_notices), for a subprocess's PYTHONPATH; the venv stays gym-free."""
    target = tmp_path_factory.mktemp("real_gym")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         "gym==0.26.2", "gym_notices"],
        capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"pip could not install gym 0.26.2: {done.stderr.strip().splitlines()[-1:]}")
    return target


def run_with_real_gym(real_gym: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(real_gym), *filter(None, [os.environ.get("PYTHONPATH")])])
    # The thread settings stay this process's: a run compared with one made here must compute in the same order.
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})


def episode_columns(experiment: Path) -> pd.DataFrame:
    return pd.read_csv(experiment / CSV_NAME)[["Episode Length", "Training Reward", "Evaluation Reward", "Success Rate"]]


# ---- no gym installed: the fallback ------------------------------------------------------------------------
def test_gym_imports_are_answered_by_gymnasium() -> None:
    install_gym_fallback()
    install_gym_fallback()
    import gym
    import gym.spaces.box
    from gym import Env, spaces
    from gym.envs.classic_control import CartPoleEnv, MountainCarEnv
    from gym.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv
    from gym.envs.registration import EnvSpec, register
    from gym.utils import seeding
    from gym.wrappers.time_limit import TimeLimit

    finders = [f.__name__ if isinstance(f, type) else type(f).__name__ for f in sys.meta_path]
    # After the path finder (a real gym, when installed, wins), once; rl_coach's own finder may sit after it.
    assert is_gym_fallback(gym) and finders.count("_GymFallbackFinder") == 1
    assert finders.index("_GymFallbackFinder") > finders.index("PathFinder")
    assert Env is gymnasium.Env and spaces.Box is gym.spaces.Box is gymnasium.spaces.Box
    assert register is gymnasium.register and EnvSpec is gymnasium.envs.registration.EnvSpec
    assert TimeLimit is gymnasium.wrappers.TimeLimit and seeding is gymnasium.utils.seeding
    assert MountainCarEnv is gymnasium.envs.classic_control.MountainCarEnv and CartPoleEnv.__module__.startswith("gymnasium")
    assert Continuous_MountainCarEnv is gymnasium.envs.classic_control.continuous_mountain_car.Continuous_MountainCarEnv
    # gymnasium's files are not loaded a second time under gym.* names
    assert sys.modules["gym.spaces.box"] is sys.modules["gymnasium.spaces.box"]
    env = gym.make("CartPole-v1")
    assert env.reset(seed=0)[0].shape == (4,)
    with pytest.raises(ImportError, match=r"gym\.envs\.classic_control\.rendering.*pip install 'gym==<version>'"):
        import gym.envs.classic_control.rendering  # noqa: F401


def test_the_old_api_is_read_from_what_the_environment_returns(tmp_path: Path, fresh_imports: None) -> None:
    src = write_source_folder(tmp_path)
    make = make_env_factory(GymVectorEnvironment(level="corridor_env:CorridorEnv"), [src], render=False)
    env = make()
    assert env.observation_space == gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.int32)
    assert not env.observation_space.bounded_below.any()
    first, info = env.reset(seed=3)
    assert info == {} and first.dtype == np.int32
    np.testing.assert_array_equal(env.reset(seed=3)[0], first)  # seeded through the environment's seed()
    starts = {int(env.reset(seed=s)[0][0]) for s in range(20)}
    assert starts == {0, 1}
    # walking left never reaches the goal: the environment's own limit is a truncation, not a terminal state
    for _ in range(25):
        obs, reward, terminated, truncated, info = env.step(0)
    assert (terminated, truncated, info) == (False, True, {"TimeLimit.truncated": True})
    start = int(env.reset(seed=0)[0][0])
    outcomes = [env.step(1) for _ in range(5 - start)]  # straight to the goal at position 5
    assert [o[2:4] for o in outcomes] == [(False, False)] * (4 - start) + [(True, False)] and outcomes[-1][1] == 1.0
    assert env.render().shape == (8, 48, 3)


class _ForwardingWrapper:
    """The shape of an old gym wrapper: reset(**kwargs) passes on whatever it gets, to a reset() taking nothing."""

    def __init__(self, env) -> None:
        self.env = env
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        return self.env.step(action)

    def seed(self, seed=None):
        return self.env.seed(seed)


def test_a_seed_passed_on_by_a_wrapper_reaches_the_old_seed_method(tmp_path: Path, fresh_imports: None) -> None:
    src = write_source_folder(tmp_path)
    make = make_env_factory(GymVectorEnvironment(level="corridor_env:CorridorEnv"), [src], render=False)
    direct = [int(make().reset(seed=s)[0][0]) for s in range(12)]
    wrapped = GymApiAdapter(_ForwardingWrapper(make().env), "wrapped")
    assert [int(wrapped.reset(seed=s)[0][0]) for s in range(12)] == direct
    assert set(direct) == {0, 1}


def test_gyms_own_classes_in_an_environment_module_render_and_step(tmp_path: Path, fresh_imports: None) -> None:
    src = write_source_folder(tmp_path)
    env = make_env_factory(GymVectorEnvironment(level="patient_style:PatientMountainCar"), [src], render=True)()
    assert env.reset(seed=0)[0].shape == (2,)
    assert env.render().shape == (400, 600, 3)
    assert env.step(1)[2:4] == (False, False)


class _Spec:
    id = "My Corridor (v1)"  # not an id gymnasium accepts
    reward_threshold = "high"
    max_episode_steps = 40


@pytest.mark.parametrize("spec, threshold, steps", [
    (_Spec(), None, 40),
    ("corridor", None, None),
    (gymnasium.envs.registration.EnvSpec("Corridor-v3", reward_threshold=0.75), 0.75, None),
])
def test_a_spec_of_any_type_is_read_without_crashing(tmp_path: Path, fresh_imports: None, spec, threshold, steps) -> None:
    src = write_source_folder(tmp_path)
    make = make_env_factory(GymVectorEnvironment(level="corridor_env:CorridorEnv"), [src], render=False)
    raw = make().env
    raw.spec = spec
    adapted = GymApiAdapter(raw, "corridor_env:CorridorEnv")
    assert getattr(adapted.spec, "reward_threshold", None) == threshold
    assert getattr(adapted.spec, "max_episode_steps", None) == steps


@pytest.fixture(scope="module")
def fallback_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The corridor preset trained in this process, without gym: (source folder, experiment folder)."""
    root = tmp_path_factory.mktemp("fallback_run")
    src = write_source_folder(root)
    with restored_imports():
        code, out = train_in_process(src / "preset-corridor-dqn.py", root / "exp", "--dump-gifs")
    assert code == 0, out
    return src, root / "exp"


def test_training_on_an_old_gym_environment_without_gym(fallback_run: tuple[Path, Path]) -> None:
    episodes = episode_columns(fallback_run[1])
    assert list((fallback_run[1] / "gifs").glob("*.gif"))  # frames from the old render(mode='rgb_array')
    assert (episodes["Episode Length"] == 25).any()  # some episodes ran into the environment's own limit
    assert episodes["Evaluation Reward"].notna().any()


@pytest.mark.parametrize("preset", ["preset-corridor-registered", "preset-corridor-class"])
def test_a_registered_old_environment_uses_its_spec(tmp_path: Path, fresh_imports: None, preset: str) -> None:
    src = write_source_folder(tmp_path)
    code, out = train_in_process(src / f"{preset}.py", tmp_path / "exp")
    assert code == 0, out
    episodes = episode_columns(tmp_path / "exp")
    assert episodes["Episode Length"].max() == 12  # the spec's max_episode_steps
    assert episodes["Success Rate"].notna().any()  # the spec's reward_threshold defines success


@pytest.mark.parametrize("name, returned", [
    ("ThreeValueStep", r"step\(\) returned a tuple of 3 \(ndarray, float, bool\)"),
    ("TextReset", r"reset\(\) returned 'ready' \(a str\)"),
    ("NoReturnReset", r"reset\(\) returned None \(a NoneType\)"),
])
def test_a_wrong_api_is_one_line(tmp_path: Path, fresh_imports: None, capsys: pytest.CaptureFixture[str],
                                 name: str, returned: str) -> None:
    src = write_source_folder(tmp_path)
    code = train_main(["-p", str(src / f"preset-broken-{name}.py"), "-ep", str(tmp_path / "exp")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert f"Environment 'broken_env:{name}': " in err
    assert re.search(returned, err), err
    assert f"Fix {name}." in err and "broken_env.py" in err


def test_a_wrong_api_exits_2_without_a_traceback(tmp_path: Path) -> None:
    src = write_source_folder(tmp_path)
    done = subprocess.run([sys.executable, "-m", "rlframe.cli", "-p", str(src / "preset-broken-ThreeValueStep.py")],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: Environment 'broken_env:ThreeValueStep': step() returned a tuple of 3 (ndarray, float, bool); it must "
        "return (observation, reward, done, info) (old gym) or (observation, reward, terminated, truncated, info) "
        f"(gym 0.26, gymnasium). Fix ThreeValueStep.step() in {src / 'broken_env.py'}."]


# ---- a real gym 0.26.2 ----------------------------------------------------------------------------------------
REAL_GYM_CHECKS = '''
import json, sys
import numpy as np
from rlframe.environments.gym_compat import install_gym_fallback, is_gym_fallback, to_gymnasium_space
install_gym_fallback()
import gym
spaces = {
    "box_int": gym.spaces.Box(low=-np.inf, high=np.inf, shape=(2,), dtype=np.int32),
    "box_uint8": gym.spaces.Box(low=0, high=255, shape=(3, 2), dtype=np.uint8),
    "discrete": gym.spaces.Discrete(4, start=1),
    "multi": gym.spaces.MultiDiscrete([3, 2]),
    "dict": gym.spaces.Dict({"a": gym.spaces.Discrete(2)}),
}
from pathlib import Path
from rlframe.environments.gym_environment import GymVectorEnvironment, make_env_factory
env = make_env_factory(GymVectorEnvironment(level="patient_style:PatientMountainCar"), [Path("src")], render=True)()
assert type(env.env.unwrapped).__module__.startswith("gym.envs"), env
env.reset(seed=0)
frame, step = env.render(), env.step(1)
print(json.dumps({"version": gym.__version__, "fallback": is_gym_fallback(gym),
                  "frame": list(frame.shape), "step": [len(step), bool(step[2]), bool(step[3])],
                  "spaces": {k: repr(to_gymnasium_space(v, "x", "observation")) for k, v in spaces.items()},
                  "unbounded": not to_gymnasium_space(spaces["box_int"], "x", "observation").bounded_below.any()}))
'''


def test_a_real_gym_wins_and_its_spaces_are_converted(real_gym: Path, tmp_path: Path) -> None:
    write_source_folder(tmp_path)
    done = run_with_real_gym(real_gym, REAL_GYM_CHECKS, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["version"] == "0.26.2" and report["fallback"] is False
    assert report["spaces"] == {
        "box_int": "Box(-2147483648, 2147483647, (2,), int32)",
        "box_uint8": "Box(0, 255, (3, 2), uint8)",
        "discrete": "Discrete(4, start=1)",
        "multi": "MultiDiscrete([3 2])",
        "dict": "Dict('a': Discrete(2))",
    }
    assert report["unbounded"]
    # gym 0.26's MountainCarEnv in gym's TimeLimit: rendered by its render_mode, stepped with 5 values
    assert report["frame"] == [400, 600, 3] and report["step"] == [5, False, False]


def test_training_with_a_real_gym_matches_the_fallback(real_gym: Path, tmp_path: Path,
                                                       fallback_run: tuple[Path, Path]) -> None:
    src = write_source_folder(tmp_path)
    script = textwrap.dedent(f'''
        import sys
        from rlframe.cli import train_main
        code = train_main(["-p", {str(src / "preset-corridor-dqn.py")!r}, "--seed", "0", "-ep", "callable"])
        code = code or train_main(["-p", {str(src / "preset-corridor-registered.py")!r}, "--seed", "0", "-ep", "registered"])
        import gym, corridor_env
        assert gym.__version__ == "0.26.2" and issubclass(corridor_env.CorridorEnv, gym.Env), gym
        sys.exit(code)
    ''')
    done = run_with_real_gym(real_gym, script, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # the same seed gives the same episodes, whichever gym the environment module imported
    pd.testing.assert_frame_equal(episode_columns(tmp_path / "callable"), episode_columns(fallback_run[1]))
    registered = episode_columns(tmp_path / "registered")
    assert registered["Episode Length"].max() == 12 and registered["Success Rate"].notna().any()
