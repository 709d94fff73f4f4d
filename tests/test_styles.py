"""The state colours read on dark and light backgrounds alike, and tell the phases apart."""

from __future__ import annotations

import pytest
from rich.color import Color, ColorSystem
from rich.style import Style

from tcpstates.model.states import Phase
from tcpstates.render.styles import PHASE_STYLES

BACKGROUNDS = {"black": (0, 0, 0), "dark grey": (30, 30, 30), "white": (255, 255, 255)}
MINIMUM = 3.0  # WCAG's minimum for bold text and meaningful marks; the most both can have


def luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2's relative luminance of an sRGB colour."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = map(linear, rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def colour(phase: Phase) -> Color:
    parsed = Style.parse(PHASE_STYLES[phase]).color
    assert parsed is not None, f"{phase} has no colour of its own"
    return parsed


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("background", sorted(BACKGROUNDS))
def test_each_state_colour_reads_on_dark_and_light(phase: Phase, background: str) -> None:
    rgb = tuple(colour(phase).get_truecolor())
    assert contrast(rgb, BACKGROUNDS[background]) >= MINIMUM, (phase, rgb)  # type: ignore[arg-type]


def test_the_colours_are_the_terminals_256_not_its_theme() -> None:
    # One of the 16 is whatever the theme makes it: ANSI blue was near black on dark.
    for phase in Phase:
        assert colour(phase).number is not None and colour(phase).number >= 16, phase  # type: ignore[operator]


def test_phases_are_told_apart_in_256_and_16_colours() -> None:
    full = {colour(phase).number for phase in Phase}
    standard = {colour(phase).downgrade(ColorSystem.STANDARD).number for phase in Phase}
    assert len(full) == len(standard) == len(Phase)
    # On a 16-colour terminal LISTEN is bright blue (94), never the dark 34 it was.
    assert colour(Phase.LISTENING).downgrade(ColorSystem.STANDARD).number == 12
