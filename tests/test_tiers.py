"""The tier check of tests/tiers.py, run by pytest on small test folders of its own (in this process)."""
import pytest

pytestmark = pytest.mark.unit

MARKED = "import pytest\n\npytestmark = pytest.mark.unit\n\n\ndef test_marked():\n    pass\n"
MIXED = ("import pytest\n\n\n@pytest.mark.unit\ndef test_fast():\n    pass\n\n\n"
         "@pytest.mark.integration\ndef test_slow():\n    pass\n")


@pytest.fixture
def folder(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest('pytest_plugins = ["tiers"]\n')
    pytester.makeini("[pytest]\nmarkers =\n    unit: u\n    integration: i\n    golden: g\n")
    return pytester


def test_modules_marked_once_or_per_test_are_collected(folder: pytest.Pytester) -> None:
    folder.makepyfile(test_marked=MARKED, test_mixed=MIXED)
    folder.runpytest("-m", "unit").assert_outcomes(passed=2, deselected=1)
    folder.runpytest().assert_outcomes(passed=3)


@pytest.mark.parametrize("args", [[], ["-m", "unit"]], ids=["all", "-m unit"])
def test_a_test_without_a_tier_or_with_two_is_refused_at_collection(folder: pytest.Pytester, args: list[str]) -> None:
    folder.makepyfile(
        test_marked=MARKED,
        test_forgot="def test_forgot():\n    pass\n",
        test_both="import pytest\n\npytestmark = pytest.mark.unit\n\n\n@pytest.mark.golden\ndef test_both():\n    pass\n",
    )
    result = folder.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*2 test(s) need exactly one tier marker (unit, integration, golden)*",
        "*test_both.py::test_both: golden, unit",
        "*test_forgot.py::test_forgot: no tier",
    ])
