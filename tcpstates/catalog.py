"""The message catalogues, kept with the standard library alone: extract, merge, compile, check.

    python -m tcpstates.catalog update    # add new messages to every .po, drop gone ones
    python -m tcpstates.catalog compile   # .po -> .mo, as shipped in the package
    python -m tcpstates.catalog check     # exit 1 on an untranslated message or a stale .mo

Messages are the string literals given to ``_()``, ``N_()`` and ``ngettext()`` anywhere in the
package (``i18n``). The .po files are the usual gettext text (a translator's tools read them);
the .mo files are GNU gettext's binary format, which Python's ``gettext`` module reads. Nothing
here runs when tcpstates runs.
"""

from __future__ import annotations

import ast
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tcpstates.model.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

PACKAGE = Path(__file__).parent
HEADERS = {
    "id": (
        "Project-Id-Version: tcpstates\n"
        "PO-Revision-Date: 2026-11-26 00:00+0000\n"
        "Last-Translator: tcpstates maintainers\n"
        "Language-Team: Indonesian\n"
        "Language: id\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "Plural-Forms: nplurals=1; plural=0;\n"
    ),
}

Key = tuple[str, str | None]  # (msgid, msgid_plural)


@dataclass(slots=True)
class Entry:
    msgid: str
    plural: str | None = None
    strings: list[str] = field(default_factory=list)  # msgstr, or msgstr[0], msgstr[1], ...
    locations: list[str] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return self.msgid, self.plural

    @property
    def translated(self) -> bool:
        return bool(self.strings) and all(self.strings)


def extract(package: Path = PACKAGE) -> dict[Key, list[str]]:
    """Every message in the package's source, with the places it is written."""
    found: dict[Key, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = path.relative_to(package.parent).as_posix()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            args = node.args
            literal = [isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args]
            if node.func.id in ("_", "N_") and args and literal[0]:
                key: Key = (args[0].value, None)  # type: ignore[attr-defined]
            elif node.func.id == "ngettext" and len(args) >= 2 and all(literal[:2]):
                key = (args[0].value, args[1].value)  # type: ignore[attr-defined]
            else:
                continue
            found.setdefault(key, []).append(f"{where}:{node.lineno}")
    for locations in found.values():
        locations.sort(key=_place)
    return dict(sorted(found.items(), key=lambda item: _place(item[1][0])))


def _place(location: str) -> tuple[str, int]:
    path, _sep, line = location.rpartition(":")
    return path, int(line)


# -- .po ------------------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    body = text.strip()[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), body)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    lines = escaped.split("\n")
    parts = [line + "\\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    if len(parts) <= 1 and len(escaped) < 70:
        return f'"{"".join(parts)}"'
    return '""\n' + "\n".join(f'"{part}"' for part in _fold(parts))


def _fold(parts: list[str], width: int = 76) -> Iterable[str]:
    # Long lines are cut after spaces, as msgmerge does, so diffs stay readable.
    for part in parts:
        while len(part) > width:
            cut = part.rfind(" ", 0, width)
            if cut <= 0:
                break
            yield part[: cut + 1]
            part = part[cut + 1 :]
        yield part


def read_po(path: Path) -> tuple[str, dict[Key, Entry]]:
    """The header and the entries of a .po file."""
    entries: list[Entry] = []
    current: Entry | None = None
    field_name = ""
    locations: list[str] = []  # the "#:" lines before the next entry
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#:"):
            locations += line[2:].split()
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            current = Entry(_unquote(line[6:]), locations=locations)
            locations = []
            entries.append(current)
            field_name = "msgid"
        elif line.startswith("msgid_plural ") and current is not None:
            current.plural = _unquote(line[13:])
            field_name = "plural"
        elif line.startswith("msgstr[") and current is not None:
            current.strings.append(_unquote(line.split("]", 1)[1]))
            field_name = "msgstr"
        elif line.startswith("msgstr ") and current is not None:
            current.strings = [_unquote(line[7:])]
            field_name = "msgstr"
        elif line.startswith('"') and current is not None:
            text = _unquote(line)
            if field_name == "msgid":
                current.msgid += text
            elif field_name == "plural":
                current.plural = (current.plural or "") + text
            else:
                current.strings[-1] += text
    header = ""
    result: dict[Key, Entry] = {}
    for entry in entries:
        if entry.msgid == "" and entry.plural is None:
            header = entry.strings[0] if entry.strings else ""
        else:
            result[entry.key] = entry
    return header, result


def write_po(path: Path, header: str, entries: Iterable[Entry]) -> None:
    out = [
        "# tcpstates messages (python -m tcpstates.catalog update, compile, check)",
        'msgid ""',
        f"msgstr {_quote(header)}",
    ]
    for entry in entries:
        out.append("")
        out += [f"#: {where}" for where in entry.locations]
        if "{" in entry.msgid:
            out.append("#, python-brace-format")
        out.append(f"msgid {_quote(entry.msgid)}")
        if entry.plural is not None:
            out.append(f"msgid_plural {_quote(entry.plural)}")
            for i, text in enumerate(entry.strings or [""]):
                out.append(f"msgstr[{i}] {_quote(text)}")
        else:
            out.append(f"msgstr {_quote(entry.strings[0] if entry.strings else '')}")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def po_path(language: str) -> Path:
    return Path(LOCALE_DIR) / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str) -> Path:
    return po_path(language).with_suffix(".mo")


def update(language: str) -> list[Entry]:
    """Merge the source's messages into ``language``'s .po; returns the untranslated ones."""
    path = po_path(language)
    header, old = read_po(path) if path.exists() else (HEADERS.get(language, ""), {})
    entries = []
    for key, locations in extract().items():
        entry = old.get(key) or Entry(key[0], key[1])
        entry.locations = locations
        entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_po(path, header or HEADERS.get(language, ""), entries)
    return [e for e in entries if not e.translated]


# -- .mo ------------------------------------------------------------------------------------


def compile_mo(header: str, entries: Iterable[Entry]) -> bytes:
    """GNU gettext's binary catalogue: a header, two tables of (length, offset), the strings.

    Untranslated entries are left out, as msgfmt does, so gettext falls back to English.
    """
    messages = {"": header}
    for entry in entries:
        if not entry.translated:
            continue
        if entry.plural is None:
            messages[entry.msgid] = entry.strings[0]
        else:
            messages[f"{entry.msgid}\0{entry.plural}"] = "\0".join(entry.strings)
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    count = len(keys)
    start = 7 * 4 + 16 * count  # the header, then both tables, then the strings
    id_table, str_table = [], []
    offset = start
    for k in keys:
        length = len(k.encode())
        id_table.append((length, offset))
        offset += length + 1
    for k in keys:
        length = len(messages[k].encode())
        str_table.append((length, offset))
        offset += length + 1
    header_bytes = struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, 0)
    tables = b"".join(struct.pack("<2I", *pair) for pair in (*id_table, *str_table))
    return header_bytes + tables + ids + strs


def compile_language(language: str) -> bytes:
    header, entries = read_po(po_path(language))
    return compile_mo(header, entries.values())


def problems(language: str) -> list[str]:
    """Untranslated messages, translations that lose or invent a {placeholder}, stale .mo."""
    header, entries = read_po(po_path(language))
    found = []
    for key, locations in extract().items():
        entry = entries.get(key)
        where = locations[0]
        if entry is None or not entry.translated:
            found.append(f"{where}: untranslated: {key[0]!r}")
            continue
        wanted = set(re.findall(r"\{(\w*)\}", key[0]))
        for text in entry.strings:
            if set(re.findall(r"\{(\w*)\}", text)) != wanted:
                found.append(f"{where}: placeholders differ: {key[0]!r} -> {text!r}")
    mo = mo_path(language)
    if not mo.exists() or mo.read_bytes() != compile_mo(header, entries.values()):
        found.append(f"{mo}: not compiled from {po_path(language).name}; run compile")
    return found


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    languages = [lang for lang in LANGUAGES if lang != "en"]
    status = 0
    for language in languages:
        if command == "update":
            missing = update(language)
            print(f"{po_path(language)}: {len(missing)} untranslated")
        elif command == "compile":
            mo_path(language).write_bytes(compile_language(language))
            print(f"wrote {mo_path(language)}")
        elif command == "check":
            found = problems(language)
            for line in found:
                print(line)
            status |= bool(found)
        else:
            print(f"usage: python -m tcpstates.catalog update|compile|check ({command}?)")
            return 2
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
