"""The test tiers (registered in setup.cfg): every test carries exactly one, so ``-m unit``, ``-m integration``
and ``-m golden`` together always run the whole suite. A plugin of tests/conftest.py."""
from __future__ import annotations

import pytest

TIERS = ("unit", "integration", "golden")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: `-m unit` also refuses an unmarked test
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test without exactly one tier marker: a module sets ``pytestmark = pytest.mark.<tier>``, a module
    mixing tiers marks each test."""
    wrong = []
    for item in items:
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) != 1:
            wrong.append(f"  {item.nodeid}: {', '.join(sorted(tiers)) or 'no tier'}")
    if wrong:
        raise pytest.UsageError(
            f"{len(wrong)} test(s) need exactly one tier marker ({', '.join(TIERS)}): add "
            "`pytestmark = pytest.mark.<tier>` to the module (or mark each test of a module that mixes tiers):\n"
            + "\n".join(wrong[:20]) + (f"\n  ... and {len(wrong) - 20} more" if len(wrong) > 20 else ""))
