"""The colours of the states, by where each sits in a connection's life.

Each is a concrete 256-colour value, not one of the 16 a terminal's theme redefines: ANSI
blue (34) is near black on a dark background and yellow near white on a light one. These
keep a WCAG contrast of at least 3:1 against black, a dark grey (#1e1e1e) and white at once.
3:1 is the most any colour can hold against both a dark and a light background (their
luminances leave a window of about 0.14 to 0.30), and WCAG's minimum for large or bold text
and for marks that carry meaning. On a 16-colour terminal Rich picks the nearest of its 16
(LISTEN becomes bright blue, 94, not 34). tests/test_styles.py holds all of this.
"""

from __future__ import annotations

from tcpstates.model.states import Phase, TcpState

PHASE_STYLES: dict[Phase, str] = {
    Phase.HANDSHAKE: "color(136)",  # dark gold: yellow that still reads on white
    Phase.OPEN: "color(28)",  # green
    Phase.WE_CLOSED: "color(30)",  # teal
    Phase.PEER_CLOSED: "color(163)",  # magenta
    Phase.LISTENING: "color(33)",  # a blue that reads on black
    Phase.INACTIVE: "color(244)",  # grey
}


def state_style(state: TcpState) -> str:
    return PHASE_STYLES[state.phase]
