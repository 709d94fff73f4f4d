"""Messages in the reader's language: English in the source, others from gettext catalogues.

The sentences tcpstates writes (explanations, summaries, findings, the diagram and the
scenarios) are marked in the source: ``N_("...")`` where a constant is defined, ``_(text)``
where it is shown. Until ``use()`` picks a language other than English, ``_`` gives its
argument back and gettext is not even imported, so English costs nothing. State names, option
names, commands and JSON keys are never translated.

The catalogues ship inside the package: ``tcpstates/locale/LANG/LC_MESSAGES/tcpstates.mo``,
compiled by Babel's ``pybabel`` from the ``.po`` beside it in the source tree; the ``.po`` is
not installed. ``tests/i18n_check.py`` gives the commands and checks the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import Any

DOMAIN = "tcpstates"
LANGUAGES = ("en", "id")  # English (the source) and the catalogues shipped
LOCALE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "locale")

_state: dict[str, Any] = {"language": "en", "translation": None}


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue where it is defined; it is translated where shown."""
    return message


def _(message: str) -> str:
    """``message`` in the current language (itself in English, or where a catalogue lacks it)."""
    translation = _state["translation"]
    if translation is None:
        return message
    text: str = translation.gettext(message)
    return text


def ngettext(singular: str, plural: str, n: int) -> str:
    translation = _state["translation"]
    if translation is None:
        return singular if n == 1 else plural
    text: str = translation.ngettext(singular, plural, n)
    return text


def language() -> str:
    """The language in use: "en" or one of the catalogues'."""
    lang: str = _state["language"]
    return lang


def use(requested: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Switch to ``requested`` (a --lang value), or else to what the environment asks for.

    Returns the language now in use. A language without a catalogue means English.
    """
    if requested:
        lang = requested.lower()
    else:
        lang = from_environment(os.environ if environ is None else environ)
    if lang == "en" or lang not in LANGUAGES:
        _state.update(language="en", translation=None)
        return "en"
    import gettext

    try:
        translation = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])
    except OSError as e:
        from tcpstates.model.errors import TcpstatesError

        raise TcpstatesError(f"no {lang!r} catalogue in this installation: {e}") from None
    _state.update(language=lang, translation=translation)
    return lang


def from_environment(environ: Mapping[str, str]) -> str:
    """The language the locale variables ask for, in gettext's order of precedence.

    As Python's gettext does: the first of LANGUAGE, LC_ALL, LC_MESSAGES and LANG that is set
    decides; LANGUAGE may list several (``id:en``), and the first one we have wins. ``C`` and
    ``POSIX`` mean English.

    >>> from_environment({"LANG": "id_ID.UTF-8"}), from_environment({"LC_ALL": "C", "LANG": "id"})
    ('id', 'en')
    >>> from_environment({"LANGUAGE": "fr:id", "LANG": "fr_FR"}), from_environment({})
    ('id', 'en')
    """
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(variable)
        if not value:
            continue
        for entry in value.split(":"):
            code = entry.split(".")[0].split("@")[0].split("_")[0].lower()
            if code in ("c", "posix"):
                return "en"
            if code in LANGUAGES:
                return code
        return "en"
    return "en"
