"""The settings that govern each state, read from /proc/sys (or a copy of it), n/a when missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcpstates.explain.render_states import explanation_text
from tcpstates.explain.states import explain
from tcpstates.model import tunables
from tcpstates.model.states import TcpState
from tcpstates.sources.kernel import read_settings, read_sysctl

S = TcpState


def fake_proc(tmp_path: Path, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = tmp_path / "sys" / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return str(tmp_path)


def test_the_settings_the_issue_names() -> None:
    governing = {state: set(names) for state, names in tunables.GOVERNING.items()}
    assert {"TCP_TIMEWAIT_LEN", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_max_tw_buckets"} <= (
        governing[S.TIME_WAIT]
    )
    assert governing[S.FIN_WAIT2] == {"net.ipv4.tcp_fin_timeout"}
    assert {"net.ipv4.tcp_synack_retries", "net.ipv4.tcp_syncookies",
            "net.ipv4.tcp_max_syn_backlog"} <= governing[S.SYN_RECV]  # fmt: skip
    assert "net.core.somaxconn" in governing[S.LISTEN]
    assert {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes"} <= governing[S.ESTABLISHED]  # fmt: skip
    assert governing[S.CLOSE_WAIT] == set() and S.CLOSE_WAIT in tunables.NONE_GOVERNS


def test_every_setting_says_what_it_does_and_does_not() -> None:
    for names in tunables.GOVERNING.values():
        for name in names:
            tunable = tunables.TUNABLES[name]
            assert tunable.does.endswith(".") and tunable.does_not.endswith("."), name


def test_values_come_from_proc_sys_and_missing_ones_are_none(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {"net.ipv4.tcp_tw_reuse": "1", "net.ipv4.ip_local_port_range":
                                "32768\t60999"})  # fmt: skip
    settings = {s.tunable.name: s for s in read_settings(S.TIME_WAIT, proc)}
    assert settings["TCP_TIMEWAIT_LEN"].value == "60" and settings["TCP_TIMEWAIT_LEN"].constant
    assert settings["net.ipv4.tcp_tw_reuse"].value == "1"
    assert settings["net.ipv4.ip_local_port_range"].value == "32768 60999"
    assert settings["net.ipv4.tcp_max_tw_buckets"].value is None
    text = explanation_text(explain(S.TIME_WAIT, settings=read_settings(S.TIME_WAIT, proc)))
    assert "  TCP_TIMEWAIT_LEN = 60 s (fixed)\n" in text
    assert "  net.ipv4.tcp_tw_reuse = 1 (on)\n" in text
    assert "  net.ipv4.tcp_max_tw_buckets = n/a\n" in text
    assert "does not: Change with any sysctl (tcp_fin_timeout included" in text


def test_a_proc_without_sys_is_all_na_and_no_crash(tmp_path: Path) -> None:
    for state in TcpState:
        for setting in read_settings(state, str(tmp_path)):
            assert setting.value is None or setting.constant
        explanation_text(explain(state, settings=read_settings(state, str(tmp_path))))


def test_close_wait_says_no_setting_ends_it() -> None:
    text = explanation_text(explain(S.CLOSE_WAIT, settings=read_settings(S.CLOSE_WAIT)))
    section = text.split("Settings that govern it, as this host has them\n", 1)[1]
    assert " ".join(section.split()).startswith(
        "None: no kernel setting ends CLOSE_WAIT; only the application's close() does."
    )


@pytest.mark.parametrize("state", [S.TIME_WAIT, S.FIN_WAIT2, S.SYN_RECV, S.LISTEN, S.ESTABLISHED])
def test_explain_shows_this_hosts_values(cli, state: TcpState) -> None:
    result = cli("--explain", state.name, "-o", "json")
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["settings"]] == list(tunables.GOVERNING[state])
    for setting in data["settings"]:
        if setting["constant"]:
            assert setting["value"] == "60" and setting["unit"] == "s"
        else:
            assert setting["value"] == read_sysctl(setting["name"])
        assert setting["does"] and setting["does_not"]
    text = cli("--explain", state.name, "-o", "plain").stdout
    for setting in data["settings"]:
        value = setting["value"] or "n/a"
        assert f"  {setting['name']} = {value}" in text
