r"""The message catalogues: Babel's ``pybabel`` extracts, updates and compiles; this file checks.

Translating (Babel is in the ``dev`` extra: ``pip install -e '.[dev]'``), from the checkout's top:

    pybabel extract -F tests/i18n/babel.cfg -o tests/i18n/tcpstates.pot tcpstates
    pybabel update -i tests/i18n/tcpstates.pot -d tcpstates/locale -D tcpstates \
        --ignore-obsolete --ignore-pot-creation-date
    # translate what is new or marked fuzzy in tcpstates/locale/LANG/LC_MESSAGES/tcpstates.po
    pybabel compile -d tcpstates/locale -D tcpstates --statistics
    python tests/i18n_check.py            # or: python tests/i18n_check.py LOCALE_DIR

A new language: ``pybabel init -i tests/i18n/tcpstates.pot -d tcpstates/locale -D tcpstates -l
LANG``, then LANG in ``LANGUAGES`` (tcpstates/model/i18n.py). ``tests/i18n/babel.cfg`` names the
functions that mark a message. ``pybabel compile`` leaves fuzzy entries out (English shows until
a translator clears the flag) and keeps ``msgctxt``. Only the ``.mo`` is in the wheel.

The check (tests/test_i18n.py runs it; as a script it exits 1 and prints one line a problem)
fails on a message in the source that a ``.po`` lacks, leaves empty or marks fuzzy; on a
translation whose ``{placeholders}`` differ from the English; and on a ``.mo`` that does not hold
what its ``.po`` says (compile again).
"""

from __future__ import annotations

import gettext
import io
import string
import sys
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tcpstates.model.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tcpstates"
CONFIG = ROOT / "tests" / "i18n" / "babel.cfg"


def po_path(language: str, locale: Path = Path(LOCALE_DIR)) -> Path:
    return locale / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str, locale: Path = Path(LOCALE_DIR)) -> Path:
    return po_path(language, locale).with_suffix(".mo")


def read(path: Path) -> Catalog:
    with open(path, "rb") as f:
        return read_po(f)


def extract(package: Path = PACKAGE) -> Catalog:
    """Every message in ``package``, as ``pybabel extract -F tests/i18n/babel.cfg`` finds it."""
    with open(CONFIG, encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, str(CONFIG))  # type: ignore[no-untyped-call]
    catalog = Catalog()
    for filename, line, message, _comments, context in extract_from_dir(
        str(package), method_map, options_map
    ):
        catalog.add(message, None, [(f"{package.name}/{filename}", line)], context=context)
    return catalog


def placeholders(text: str) -> set[str]:
    """The fields ``str.format`` fills in: ``"{n} of {usable:,}"`` -> ``{"n", "usable"}``.

    Raises ValueError on a lone brace, which ``str.format`` would refuse at run time too.
    """
    return {
        name for _text, name, _spec, _conv in string.Formatter().parse(text) if name is not None
    }


def compiled(catalog: Catalog) -> gettext.GNUTranslations:
    """``catalog`` as ``pybabel compile`` writes it (fuzzy entries left out), read by gettext."""
    out = io.BytesIO()
    write_mo(out, catalog)
    out.seek(0)
    return gettext.GNUTranslations(out)


def contents(translation: gettext.GNUTranslations) -> tuple[dict[object, str], str | None]:
    """The messages and the plural rule: all of a catalogue that changes what is shown.

    The rest of the header (dates, the Babel release that wrote it) changes nothing.
    """
    messages = translation._catalog  # type: ignore[attr-defined]
    return {k: v for k, v in messages.items() if k != ""}, translation.info().get("plural-forms")


def problems(po: Path, mo: Path, source: Catalog) -> list[str]:
    """What is wrong with one language's catalogue for the messages in ``source``."""
    catalog = read(po)
    found = []
    if catalog.fuzzy:
        found.append(f"{po}: the header is marked fuzzy, so pybabel compile skips the whole file")
    for message in source:
        if not message.id:
            continue  # the header
        entry = catalog.get(message.id, message.context)
        where = ":".join(map(str, message.locations[0]))
        if entry is None or not all(_strings(entry)):
            found.append(f"{where}: untranslated: {_msgid(message)!r}")
        elif entry.fuzzy:
            found.append(f"{where}: fuzzy, so not compiled: {_msgid(message)!r}")
    for entry in catalog:
        if entry.id and all(_strings(entry)):
            found += _placeholder_problems(po, entry)
    if not mo.exists():
        found.append(f"{mo}: missing; run pybabel compile")
    else:
        with open(mo, "rb") as f:
            if contents(gettext.GNUTranslations(f)) != contents(compiled(catalog)):
                found.append(f"{mo}: does not hold what {po.name} says; run pybabel compile")
    return found


def _strings(entry: Message) -> list[str]:
    return list(entry.string) if isinstance(entry.string, (list, tuple)) else [entry.string or ""]


def _msgid(entry: Message) -> str:
    return entry.id if isinstance(entry.id, str) else entry.id[0]


def _placeholder_problems(po: Path, entry: Message) -> list[str]:
    # A plural's translation may need the number the plural form names, so either English
    # form's fields are wanted; a single form (nplurals=1, as in Indonesian) serves both.
    english = [entry.id] if isinstance(entry.id, str) else list(entry.id)
    where = f"{po}:{entry.lineno}"
    try:
        wanted = set().union(*map(placeholders, english))
        for text in _strings(entry):
            if placeholders(text) != wanted:
                return [f"{where}: placeholders differ: {english[0]!r} -> {text!r}"]
    except ValueError as e:
        return [f"{where}: {e}: {english[0]!r}"]
    return []


def main(argv: list[str]) -> int:
    """Check the installed catalogues, or those under the directory named (a working copy)."""
    locale = Path(argv[0]) if argv else Path(LOCALE_DIR)
    source = extract()
    found = []
    for language in LANGUAGES:
        if language != "en":  # the source's own language has no catalogue
            found += problems(po_path(language, locale), mo_path(language, locale), source)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
