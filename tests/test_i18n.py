"""Indonesian: every message translated, the catalogue shipped compiled, chosen by --lang or the
locale, and the netstat manual's words kept in English beside their translation."""

from __future__ import annotations

import gettext
import inspect
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

import i18n_check
import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import write_po

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
from tcpstates.manual.pages import PAGES
from tcpstates.model import i18n, lifecycle
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.kernel import KernelState, read_settings
from tcpstates.summary import render as render_summary
from tcpstates.summary import render_groups
from tcpstates.summary.counts import Summary
from tcpstates.summary.groups import group_sockets

S = TcpState
ROOT = Path(__file__).parent.parent


# --- the catalogue -------------------------------------------------------------------------


def test_every_message_has_an_indonesian_translation_and_the_mo_is_current() -> None:
    po, mo = i18n_check.po_path("id"), i18n_check.mo_path("id")
    assert i18n_check.problems(po, mo, i18n_check.extract()) == []


def test_the_check_fails_on_what_a_translator_can_get_wrong(tmp_path: Path) -> None:
    catalog = i18n_check.read(i18n_check.po_path("id"))
    catalog["Who is in it"].string = ""
    catalog["peer hosts: {hosts}"].string = "host {jumlah}"
    catalog["Code"].flags.add("fuzzy")
    catalog["Phase"].string = "Fase {"
    catalog.fuzzy = True  # the header: pybabel compile would skip the whole file
    po, mo = tmp_path / "tcpstates.po", tmp_path / "tcpstates.mo"
    with open(po, "wb") as f:
        write_po(f, catalog)
    shutil.copy(i18n_check.mo_path("id"), mo)  # compiled before the changes above
    problems = i18n_check.problems(po, mo, i18n_check.extract())
    assert sorted(p.split(": ", 1)[1] for p in problems) == [
        "Single '{' encountered in format string: 'Phase'",
        "does not hold what tcpstates.po says; run pybabel compile",
        "fuzzy, so not compiled: 'Code'",
        "placeholders differ: 'peer hosts: {hosts}' -> 'host {jumlah}'",
        "the header is marked fuzzy, so pybabel compile skips the whole file",
        "untranslated: 'Who is in it'",
    ]
    assert problems[-1].startswith(f"{mo}: ")
    # Compiled again, the .mo is current; a message new in the source and not in the .po fails.
    with open(mo, "wb") as f:
        write_mo(f, catalog)
    source = Catalog()
    source.add("A new sentence.", locations=[("x.py", 1)])
    again = i18n_check.problems(po, mo, source)
    assert "x.py:1: untranslated: 'A new sentence.'" in again
    assert not any(p.startswith(f"{mo}: ") for p in again)


def test_the_shipped_mo_gives_what_the_po_says() -> None:
    catalog = i18n_check.read(i18n_check.po_path("id"))
    with open(i18n_check.mo_path("id"), "rb") as f:
        translation = gettext.GNUTranslations(f)
    entries = [entry for entry in catalog if entry.id]
    assert len(entries) > 200
    for entry in entries:
        if isinstance(entry.id, str):
            assert translation.gettext(entry.id) == entry.string
        else:
            singular, plural = entry.id
            assert translation.ngettext(singular, plural, 1) == entry.string[0]
            assert translation.ngettext(singular, plural, 5) == entry.string[0]  # nplurals=1


def test_the_po_is_written_as_pybabel_writes_it() -> None:
    # So that `pybabel update` changes only what changed in the source, not the layout.
    text = i18n_check.po_path("id").read_bytes()
    out = io.BytesIO()
    write_po(out, i18n_check.read(i18n_check.po_path("id")))
    assert out.getvalue().decode() == text.decode()


def test_gnu_msgfmt_agrees_the_po_is_well_formed(tmp_path: Path) -> None:
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("GNU gettext's msgfmt is not installed")
    done = subprocess.run(
        [msgfmt, "-c", "-o", str(tmp_path / "gnu.mo"), str(i18n_check.po_path("id"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    with open(tmp_path / "gnu.mo", "rb") as gnu, open(i18n_check.mo_path("id"), "rb") as ours:
        gnu_says, we_ship = gettext.GNUTranslations(gnu), gettext.GNUTranslations(ours)
    assert i18n_check.contents(gnu_says) == i18n_check.contents(we_ship)


def test_babel_cfg_names_every_function_that_marks_a_message() -> None:
    with open(i18n_check.CONFIG, encoding="utf-8") as f:
        _methods, options = parse_mapping_cfg(f)
    keywords = options["**.py"]["keywords"]
    markers = {
        name
        for name, function in vars(i18n).items()
        if inspect.isfunction(function)
        and next(iter(inspect.signature(function).parameters), "") in ("message", "singular")
    }
    assert {"_", "N_", "ngettext"} <= markers  # the walk above finds them
    assert markers <= set(keywords)
    assert keywords["pgettext"] == ((1, "c"), 2)  # a context function keeps its msgctxt


def pybabel(*args: str | Path) -> None:
    command = [sys.executable, "-m", "babel.messages.frontend", "-q", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_the_pybabel_workflow_keeps_msgctxt_and_compiles_no_fuzzy_entry(tmp_path: Path) -> None:
    """The commands of tests/i18n_check.py on a small package: extract, init, update, compile."""
    package, locale, pot = tmp_path / "pkg", tmp_path / "locale", tmp_path / "m.pot"
    package.mkdir()
    (package / "m.py").write_text(
        'OPEN = N_("Open")\n'
        '_("{n} new")\n'
        'pgettext("file", "Open")\n'
        'npgettext("file", "{n} file", "{n} files", 2)\n'
    )
    pybabel("extract", "-F", i18n_check.CONFIG, "-o", pot, package)
    pybabel("init", "-i", pot, "-d", locale, "-D", "tcpstates", "-l", "id")
    po = locale / "id" / "LC_MESSAGES" / "tcpstates.po"
    catalog = i18n_check.read(po)
    assert {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in catalog if m.id} == {
        ("Open", None), ("{n} new", None), ("Open", "file"), ("{n} file", "file"),
    }  # fmt: skip
    catalog.get("Open").string = "Buka"
    catalog.get("Open", "file").string = "Buka berkas"
    catalog.get("{n} file", "file").string = ("{n} berkas",)
    catalog.get("{n} new").string = "{n} baru"
    catalog.get("{n} new").flags.add("fuzzy")  # a guess: not to be shown
    with open(po, "wb") as f:
        write_po(f, catalog)
    # A message added to the source: update keeps every translation and context.
    with open(package / "m.py", "a") as f:
        f.write('_("Close")\n')
    pybabel("extract", "-F", i18n_check.CONFIG, "-o", pot, package)
    pybabel("update", "-i", pot, "-d", locale, "-D", "tcpstates", "--ignore-obsolete",
            "--ignore-pot-creation-date")  # fmt: skip
    updated = i18n_check.read(po)
    assert updated.get("Open", "file").string == "Buka berkas"
    assert updated.get("Close") is not None and updated.get("Close").string == ""
    pybabel("compile", "-d", locale, "-D", "tcpstates")
    with open(po.with_suffix(".mo"), "rb") as f:
        translation = gettext.GNUTranslations(f)
    assert translation.gettext("Open") == "Buka"
    assert translation.pgettext("file", "Open") == "Buka berkas"
    assert translation.npgettext("file", "{n} file", "{n} files", 3) == "{n} berkas"
    assert translation.gettext("{n} new") == "{n} new"  # fuzzy: left out, English shows
    assert translation.gettext("Close") == "Close"  # untranslated: English
    problems = i18n_check.problems(po, po.with_suffix(".mo"), i18n_check.extract(package))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "fuzzy, so not compiled: '{n} new'", "untranslated: 'Close'",
    ]  # fmt: skip


def test_the_wheel_holds_the_mo_not_its_sources_and_translates_with_it(
    cli: Any, tmp_path: Path
) -> None:
    # hatchling is in the test extra, so CI builds the wheel; a bare checkout may skip this.
    pytest.importorskip("hatchling")
    done = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("*.whl")
    installed = tmp_path / "installed"
    with zipfile.ZipFile(wheel) as built:
        names = built.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = built.read(entry_points).decode()
        built.extractall(installed)
    assert "tcpstates/locale/id/LC_MESSAGES/tcpstates.mo" in names
    assert [n for n in names if n.endswith((".po", ".pot")) or "catalog" in n] == []
    for page in PAGES.values():  # every manual page, where man looks in the environment
        assert any(n.endswith(f".data/data/share/man/man{page[-1]}/{page}") for n in names), page
    # The console script enters where the summary fast path is tried before click loads.
    assert "tcpstates = tcpstates.__main__:entry" in scripts
    # What the wheel installs translates with the .mo alone, as the checkout does.
    args = ["--lang", "id", "--explain", "-o", "plain"]
    run = "import runpy, sys, tcpstates; print(tcpstates.__file__, file=sys.stderr); "
    run += f"sys.argv[1:] = {args!r}; runpy.run_module('tcpstates', run_name='__main__')"
    env = {**os.environ, "PYTHONPATH": str(installed)}  # before the checkout's editable path
    done = subprocess.run(
        [sys.executable, "-c", run], cwd=tmp_path, capture_output=True, text=True, env=env,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.stderr == f"{installed / 'tcpstates' / '__init__.py'}\n"
    assert done.returncode == 0 and done.stdout == cli(*args).stdout
    assert "Soket memiliki koneksi yang sudah terjalin." in done.stdout


def check_script(*args: str | Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "i18n_check.py"), *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_the_script_passes_the_shipped_catalogues_and_fails_a_broken_one(tmp_path: Path) -> None:
    assert check_script() == (0, "", "")
    shutil.copytree(Path(i18n.LOCALE_DIR), tmp_path, dirs_exist_ok=True)
    po = tmp_path / "id" / "LC_MESSAGES" / "tcpstates.po"
    po.write_text(po.read_text().replace('msgstr "Fase"', 'msgstr ""'))
    status, out, err = check_script(tmp_path)
    assert (status, err) == (1, "")
    assert out.splitlines() == [
        out.splitlines()[0].split(": ")[0] + ": untranslated: 'Phase'",
        f"{po.with_suffix('.mo')}: does not hold what tcpstates.po says; run pybabel compile",
    ]


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


def flood_evidence() -> list[Evidence]:
    """Two looks at floods: every wording of doctor/floods.py and of counters read twice."""
    from tcpstates.doctor.checks import Look
    from tcpstates.sources.kernel import Scope

    names = ("SyncookiesSent", "TCPReqQFullDoCookies", "TCPReqQFullDrop", "ListenOverflows",
             "ListenDrops", "TCPTimeWaitOverflow")  # fmt: skip
    before = {f"TcpExt.{name}": 10 for name in names}
    everything = {f"TcpExt.{name}": 30 for name in names}
    cookies = before | {"TcpExt.SyncookiesSent": 30, "TcpExt.TCPReqQFullDoCookies": 30}
    settings = {"net.ipv4.tcp_max_syn_backlog": "2048", "net.core.somaxconn": "4096",
                "net.ipv4.tcp_max_tw_buckets": "4"}  # fmt: skip
    shared = [sock(S.LISTEN, 9090, 0, send_q=2), sock(S.LISTEN, 9090, 0, send_q=2, pid=43)]
    deaf = [sock(S.LISTEN, 9090, 0, send_q=2, recv_q=3)]
    roomy = [sock(S.LISTEN, 9090, 0, send_q=16)]
    queue = [sock(S.SYN_RECV, 9090, i, remote_address=f"10.9.{i}.1") for i in range(6)]
    cases = [("1", shared + queue, cookies), ("0", shared + queue, everything),
             ("1", deaf + queue, everything), ("1", roomy + queue[:1], cookies),
             ("2", [], cookies), ("0", [], everything)]  # fmt: skip
    evidence = [
        Evidence(found, KernelState(now, settings | {"net.ipv4.tcp_syncookies": mode}),
                 earlier=Look([], KernelState(before, {})), seconds=0.5)
        for mode, found, now in cases
    ]  # fmt: skip
    evidence.append(Evidence(queue, KernelState(everything, settings, scope=Scope.NAMESPACE)))
    return evidence


def everything_in_the_language_in_use() -> str:
    """Every kind of text tcpstates writes for people, for every state and scenario."""
    parts = []
    for state in TcpState:
        parts.append(explanation_text(explain(state, 3, read_settings(state))))
        parts.append(json.dumps(explain(state, 1, read_settings(state)).as_dict()))
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
    for flood in flood_evidence():
        parts.append(render_findings.findings_text(diagnose(flood)))
    parts.append(json.dumps([f.as_dict() for f in findings]))
    summary = Summary({"tcp": {S.ESTABLISHED: 1}, "udp": {S.CLOSE: 2}})
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
