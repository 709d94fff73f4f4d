"""Indonesian: every message translated, the catalogue shipped compiled, chosen by --lang or the
locale, and the netstat manual's words kept in English beside their translation."""

from __future__ import annotations

import gettext
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tcpstates import catalog
from tcpstates.doctor import render as render_findings
from tcpstates.doctor.checks import Evidence, Thresholds, diagnose
from tcpstates.explain import diagram
from tcpstates.explain import render_sockets as render_accounts
from tcpstates.explain.render_diagram import diagram_text
from tcpstates.explain.render_scenario import live_lines, scenario_text
from tcpstates.explain.render_states import explanation_text, state_columns, state_rows
from tcpstates.explain.scenario_live import Checkpoint, LiveRun
from tcpstates.explain.sockets import account
from tcpstates.explain.states import explain
from tcpstates.model import i18n, lifecycle, tunables
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.kernel import KernelState
from tcpstates.summary import render as render_summary
from tcpstates.summary import render_groups
from tcpstates.summary.counts import Summary
from tcpstates.summary.groups import group_sockets

S = TcpState
ROOT = Path(__file__).parent.parent


# --- the catalogue -------------------------------------------------------------------------


def test_every_message_has_an_indonesian_translation_and_the_mo_is_current() -> None:
    assert catalog.problems("id") == []


def test_the_check_fails_on_an_untranslated_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header, entries = catalog.read_po(catalog.po_path("id"))
    entries[("Who is in it", None)].strings = [""]
    entries[("{n} sockets without a known owner", None)].strings = ["{jumlah} soket"]
    po = tmp_path / "tcpstates.po"
    catalog.write_po(po, header, entries.values())
    (tmp_path / "tcpstates.mo").write_bytes(catalog.compile_mo(header, entries.values()))
    monkeypatch.setattr(catalog, "po_path", lambda language: po)
    problems = catalog.problems("id")
    assert any("untranslated: 'Who is in it'" in p for p in problems)
    assert any("placeholders differ" in p for p in problems)
    # A message added to the source without a translation fails too.
    monkeypatch.setattr(catalog, "extract", lambda: {("A new sentence.", None): ["x.py:1"]})
    assert catalog.problems("id") == ["x.py:1: untranslated: 'A new sentence.'"]


def test_the_shipped_mo_gives_what_the_po_says() -> None:
    header, entries = catalog.read_po(catalog.po_path("id"))
    with open(catalog.mo_path("id"), "rb") as f:
        translation = gettext.GNUTranslations(f)
    for (msgid, plural), entry in entries.items():
        if plural is None:
            assert translation.gettext(msgid) == entry.strings[0]
        else:
            assert translation.ngettext(msgid, plural, 1) == entry.strings[0]
            assert translation.ngettext(msgid, plural, 5) == entry.strings[0]  # nplurals=1


def test_the_po_round_trips_through_our_reader_and_writer(tmp_path: Path) -> None:
    header, entries = catalog.read_po(catalog.po_path("id"))
    copy = tmp_path / "copy.po"
    catalog.write_po(copy, header, entries.values())
    assert copy.read_text() == catalog.po_path("id").read_text()


def test_gnu_msgfmt_agrees_the_po_is_well_formed(tmp_path: Path) -> None:
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("GNU gettext's msgfmt is not installed")
    done = subprocess.run(
        [msgfmt, "-c", "-o", str(tmp_path / "gnu.mo"), str(catalog.po_path("id"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    with open(tmp_path / "gnu.mo", "rb") as gnu, open(catalog.mo_path("id"), "rb") as ours:
        assert gettext.GNUTranslations(gnu)._catalog == gettext.GNUTranslations(ours)._catalog  # type: ignore[attr-defined]


def test_the_wheel_holds_the_catalogue_the_man_page_and_the_entry_point(tmp_path: Path) -> None:
    # hatchling is in the test extra, so CI builds the wheel; a bare checkout may skip this.
    pytest.importorskip("hatchling")
    done = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as built:
        names = built.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = built.read(entry_points).decode()
    assert "tcpstates/locale/id/LC_MESSAGES/tcpstates.mo" in names
    assert any(n.endswith(".data/data/share/man/man1/tcpstates.1") for n in names)
    # The console script enters where the summary fast path is tried before click loads.
    assert "tcpstates = tcpstates.__main__:main" in scripts


# --- every message shown is in the catalogue --------------------------------------------------


class Recording:
    """The Indonesian translation, noting every message asked for that it does not have."""

    def __init__(self, translation: gettext.GNUTranslations) -> None:
        self.translation = translation
        self.missing: set[str] = set()
        self.asked: set[str] = set()

    def gettext(self, message: str) -> str:
        self.asked.add(message)
        if message not in self.translation._catalog:  # type: ignore[attr-defined]
            self.missing.add(message)
        return self.translation.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        self.asked.add(singular)
        if (singular, 0) not in self.translation._catalog:  # type: ignore[attr-defined]
            self.missing.add(singular)
        return self.translation.ngettext(singular, plural, n)


def sock(state: TcpState, lport: int = 40000, rport: int = 80, **kw: Any) -> Socket:
    fields: dict[str, Any] = dict(
        proto="tcp", family=4, local_address="10.0.0.1", local_port=lport,
        remote_address="10.0.0.2", remote_port=rport, state=state, recv_q=0, send_q=0, uid=0,
        inode=7, pid=42, process="app",
    )  # fmt: skip
    fields.update(kw)
    return Socket(**fields)


def everything_in_the_language_in_use() -> str:
    """Every kind of text tcpstates writes for people, for every state and scenario."""
    parts = []
    for state in TcpState:
        parts.append(explanation_text(explain(state, 3, tunables.settings(state))))
        parts.append(json.dumps(explain(state, 1, tunables.settings(state)).as_dict()))
        if state in diagram.PLACES:
            parts.append(diagram_text({s: 1 for s in TcpState}, state))
    parts.append(diagram_text(None, None))
    for scenario in lifecycle.SCENARIOS.values():
        run = LiveRun(scenario, "127.0.0.1", {"a": 1, "b": 2})
        start = (scenario.a_start, scenario.b_start)
        action = "a connects to b's listener; b accepts"
        run.checkpoints.append(Checkpoint(0, action, start, (S.CLOSE, S.CLOSE)))
        parts.append(scenario_text(scenario, run))
        parts.append("\n".join(live_lines(LiveRun(scenario, "::1"))))
    kernel = KernelState(
        {"TcpExt.ListenOverflows": 5, "TcpExt.ListenDrops": 5, "TcpExt.TCPTimeWaitOverflow": 1},
        {"net.ipv4.ip_local_port_range": "40000 40009", "net.ipv4.tcp_max_syn_backlog": "4",
         "net.ipv4.tcp_syncookies": "1", "net.ipv4.tcp_max_tw_buckets": "4",
         "net.ipv4.tcp_fin_timeout": "60"},
    )  # fmt: skip
    sockets = [sock(S.CLOSE_WAIT, 8080, 40000 + i) for i in range(12)]
    sockets += [sock(S.TIME_WAIT, 40000 + i, 443, inode=0, pid=None, process=None)
                for i in range(9)]  # fmt: skip
    sockets += [sock(S.LISTEN, 8080, 0, recv_q=5, send_q=5), sock(S.SYN_RECV, 8080, 1)]
    sockets += [sock(S.SYN_RECV, 8080, i) for i in range(2, 5)]
    sockets += [sock(S.FIN_WAIT1, 40100, 80, send_q=100)]
    sockets += [sock(S.FIN_WAIT2, 40101, 80, inode=0, pid=None, process=None)]
    sockets += [sock(S.ESTABLISHED, 40102, 80, pid=None, process=None)]
    evidence = Evidence(sockets, kernel, hidden_processes=3)
    findings = diagnose(evidence, Thresholds(time_wait_info=5))
    parts.append(render_findings.findings_text(findings))
    parts.append(render_findings.findings_text([]))
    parts.append(json.dumps([f.as_dict() for f in findings]))
    summary = Summary({"tcp": {"ESTABLISHED": 1}, "udp": {"UNCONN": 2}})
    out = io.StringIO()
    render_summary.render_summary_plain(summary, out)
    for by in ("process", "local-port", "remote", "state-group"):
        render_groups.render_groups_plain(group_sockets(sockets, by), by, out)
        json.dumps([g.as_dict(by) for g in group_sockets(sockets, by)])
    parts.append(out.getvalue())
    accounts = [account(s) for s in sockets] + [account(sock(s)) for s in TcpState]
    accounts.append(account(sock(S.ESTABLISHED, timer="keepalive", timer_ms=5)))
    parts.append(render_accounts.accounts_text(accounts * 3))
    parts.append(str(state_rows()) + str(state_columns()))
    return "\n".join(parts)


def test_nothing_shown_in_indonesian_is_missing_from_the_catalogue() -> None:
    i18n.use("id")
    recording = Recording(i18n._state["translation"])
    i18n._state["translation"] = recording
    everything_in_the_language_in_use()
    assert recording.missing == set()
    assert len(recording.asked) > 200  # the walk really went through the explanations


# Words that give an English sentence away. State names, commands, settings, kernel counters
# and the netstat manual's own lines (kept in English on purpose) are removed first.
ENGLISH = re.compile(r"\b(the|is|are|and|of|when|which|this|that|with|from|not|its)\b")


def test_no_english_is_left_in_indonesian_output() -> None:
    i18n.use("id")
    text = everything_in_the_language_in_use()
    manual = [s.description for s in TcpState]  # kept in English beside the translation
    for description in manual:
        text = text.replace(description, "")
    manual_words = " ".join(manual)
    leftovers = []
    for line in text.splitlines():
        if "netstat(8):" in line or " ".join(line.split()) in manual_words:
            continue  # the manual's words, wrapped
        cleaned = re.sub(r'"\w+": ', "", line)  # JSON keys
        cleaned = re.sub(r"tcpstates [^;.)]*|nstat [^;.]*|[\w./-]*[_.(/][\w./()-]*", "", cleaned)
        if ENGLISH.search(cleaned):
            leftovers.append(line)
    assert leftovers == []


# --- choosing the language --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "language"),
    [({"LANG": "id_ID.UTF-8"}, "id"), ({"LC_MESSAGES": "id_ID"}, "id"), ({"LANG": "id"}, "id"),
     ({"LANGUAGE": "id:en"}, "id"), ({"LC_ALL": "C", "LANG": "id_ID.UTF-8"}, "en"),
     ({"LANGUAGE": "fr_FR:id"}, "id"), ({"LANG": "fr_FR.UTF-8"}, "en"), ({}, "en"),
     ({"LC_ALL": "en_US.UTF-8", "LC_MESSAGES": "id_ID"}, "en"), ({"LANG": "C.UTF-8"}, "en")],
)  # fmt: skip
def test_the_language_from_the_locale(env: dict[str, str], language: str) -> None:
    assert i18n.from_environment(env) == language


def test_english_is_the_default_and_loads_no_catalogue(cli) -> None:
    assert i18n.use(None, {}) == "en" and i18n._state["translation"] is None
    assert cli("--explain", "CLOSE_WAIT").stdout.startswith("CLOSE_WAIT (ss: CLOSE-WAIT")


def test_lang_id_keeps_the_manuals_english_beside_the_translation(cli) -> None:
    text = cli("--lang", "id", "--explain", "TIME_WAIT", "-o", "plain").stdout
    assert (
        "  netstat(8): The socket is waiting after close to handle packets still in the\n"
        "  network.\n"
        "  terjemahan: Soket menunggu setelah ditutup untuk menangani paket yang masih\n"
        "  ada di jaringan.\n"
    ) in text
    assert "Siapa yang berada di status ini\n" in text and "Semua namanya\n" in text
    assert "TIME_WAIT" in text and "WAKTU_TUNGGU" not in text  # state names stay as they are


def test_the_locale_picks_indonesian_for_a_whole_run(cli) -> None:
    env = {**os.environ, "LANGUAGE": "", "LC_ALL": "", "LANG": "id_ID.UTF-8"}
    done = cli.process("--explain", "-o", "plain", env=env)
    header = done.stdout.splitlines()[0].split()
    assert header == ["Status", "ss", "Kode", "Fase", "Deskripsi", "Terjemahan"]
    assert "Soket memiliki koneksi yang sudah terjalin." in done.stdout


def test_lang_id_json_translates_sentences_not_keys_or_names(cli) -> None:
    data = json.loads(cli("--lang", "id", "--explain", "FIN_WAIT2", "-o", "json").stdout)
    assert data["state"] == "FIN_WAIT2" and data["phase"] == "we closed first"
    assert data["description"].startswith("Connection is closed")
    assert data["description_translated"].startswith("Koneksi sudah ditutup")
    assert data["from"][0]["event"] == "terima ACK untuk FIN"


def test_doctor_and_summaries_in_indonesian(cli) -> None:
    text = cli("doctor", "--lang", "id", "-o", "plain").stdout
    assert "next:" not in text
    summary = cli("--lang", "id", "--summary", "-o", "plain").stdout
    assert summary.splitlines()[0].split() == ["Status", "Jumlah"]
    assert summary.splitlines()[-1].split()[0] == "Total"


def test_an_unknown_language_is_one_line_exit_2(cli) -> None:
    done = cli.process("--lang", "fr", "--explain")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "tcpstates: Invalid value for '--lang': 'fr' is not one of 'en', 'id'.\n"
