"""Shared test switches: ``--update-golden`` rewrites files under tests/golden/."""

from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/ files")


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """``golden("name.txt", text)`` compares text with a golden file (or rewrites it)."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update or not path.exists():
            if not update:
                pytest.fail(f"missing golden file {path}; run pytest --update-golden")
            path.write_text(text)
        assert text == path.read_text()

    return check


@pytest.fixture
def golden_update(request: pytest.FixtureRequest) -> bool:
    """Whether --update-golden was given: generated parts of docs are rewritten, not checked."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Tests expect English whatever the developer's locale says (LANGUAGE decides first, and
    touches nothing but message catalogues); each test starts and ends in English."""
    from tcpstates.model import i18n

    monkeypatch.setenv("LANGUAGE", "en")
    i18n.use("en")
    yield
    i18n.use("en")
