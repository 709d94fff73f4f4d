"""The seed's scenarios: a two-column timeline from lifecycle, and --live against the kernel.

The live runs happen in a private network namespace when we are root (as CI is), so the
TIME_WAIT sockets a close leaves behind for 60 s cannot meet another test's ports; elsewhere
they run on this host's loopback, as a user's would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from subprocess import CompletedProcess

import pytest
from conftest import TCPSTATES, netns_unavailable

from tcpstates.explain import scenario_live
from tcpstates.explain.render_scenario import live_lines, scenario_text
from tcpstates.model.errors import ExitStatus
from tcpstates.model.lifecycle import SCENARIOS
from tcpstates.model.states import TcpState

S = TcpState


@pytest.fixture
def isolated(request: pytest.FixtureRequest, cli) -> Callable[..., CompletedProcess[str]]:  # type: ignore[no-untyped-def]
    """``isolated(ARGS)`` runs ``tcpstates ARGS`` in a network namespace of its own where we
    may make one; elsewhere on this host, as a user's would run."""
    if netns_unavailable():
        return cli.process  # type: ignore[no-any-return]
    space = request.getfixturevalue("netns")("scenario")
    return lambda *args: space.run(*TCPSTATES, *args, timeout=60, check=False)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_timeline_is_lifecycles(cli, name: str) -> None:
    scenario = SCENARIOS[name]
    data = json.loads(cli("--scenario", name, "-o", "json").stdout)
    assert data["start"] == {"a": scenario.a_start.name, "b": scenario.b_start.name}
    expected = [
        {"end": step.end, "from": step.transition.source.name, "to": step.transition.target.name,
         "a": a.name, "b": b.name}
        for step, a, b in scenario.timeline()
    ]  # fmt: skip
    assert [{k: s[k] for k in ("end", "from", "to", "a", "b")} for s in data["steps"]] == expected
    assert [s["step"] for s in data["steps"]] == list(range(1, len(scenario.steps) + 1))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_golden_timelines(cli, name: str, golden) -> None:  # type: ignore[no-untyped-def]
    golden(f"scenario-{name}.txt", cli("--scenario", name, "-o", "plain").stdout)


def test_the_close_timeline_reads_like_the_seed(cli) -> None:
    lines = cli("--scenario", "close", "-o", "plain").stdout.splitlines()
    ladder = lines[[line.split() for line in lines].index(["a", "b"]) :]
    assert ladder[2].split() == ["1", "close()", "or", "shutdown()", "/", "snd", "FIN"]
    assert ladder[3].split() == ["FIN_WAIT1", "─────", "FIN", "──────▶", "ESTABLISHED"]
    assert ladder[5].split() == ["FIN_WAIT1", "◀─────", "ACK", "──────", "CLOSE_WAIT"]
    assert ladder[-1].split() == ["CLOSE", "CLOSE"]


def test_every_checkpoint_is_a_step_of_its_scenario() -> None:
    for name, scenario in SCENARIOS.items():
        assert name in scenario_live.PLAYS
        assert scenario.steps, name


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_live_the_kernel_agrees_at_every_checkpoint(isolated, name: str) -> None:
    done = isolated("--scenario", name, "--live", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    live = data["live"]
    assert live["agrees"] and live["address"] in ("127.0.0.1", "::1")
    timeline = [({"a": data["start"]["a"], "b": data["start"]["b"]})] + [
        {"a": s["a"], "b": s["b"]} for s in data["steps"]
    ]
    for checkpoint in live["checkpoints"]:
        # What --live expects is lifecycle's timeline, and the kernel showed exactly that.
        assert checkpoint["expected"] == timeline[checkpoint["step"]]
        assert checkpoint["kernel"] == checkpoint["expected"], checkpoint
    seen = {state for c in live["checkpoints"] for state in c["kernel"].values()}
    interesting = {
        "open": {"SYN_SENT", "SYN_RECV", "LISTEN"},
        "close": {"FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT"},
        "simultaneous-close": {"FIN_WAIT1", "CLOSING", "FIN_WAIT2", "TIME_WAIT"},
    }
    assert interesting[name] <= seen  # fmt: skip


def test_live_through_procfs_too(isolated) -> None:
    done = isolated("--scenario", "simultaneous-close", "--live", "--source", "procfs")
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    assert "The kernel showed the expected states at every checkpoint." in text
    assert "  4           CLOSING      FIN_WAIT2    CLOSING      FIN_WAIT2    agrees" in (text)


def test_a_kernel_that_disagrees_is_reported_and_exits_4(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scenario_live, "SETTLE", 0.05)
    run = scenario_live.rehearse("close", lambda query: [])  # a table that shows nothing
    assert not run.agrees
    assert run.checkpoints[0].seen == (S.CLOSE, S.CLOSE)
    lines = live_lines(run)
    assert lines[-1] == "The kernel differed from the scenario at 5 of 5 checkpoints."
    assert any(line.endswith("differs") for line in lines)
    monkeypatch.setattr("tcpstates.explain.run._rehearse", lambda name, source: run)
    done = cli("--scenario", "close", "--live", "-o", "plain")
    assert done.returncode == ExitStatus.MISMATCH == 4 and "differs" in done.stdout


def test_the_text_names_the_steps_too_fast_to_see() -> None:
    run = scenario_live.LiveRun(SCENARIOS["close"], "127.0.0.1", {"a": 1, "b": 2})
    text = scenario_text(SCENARIOS["close"], run)
    assert "  2           FIN_WAIT1    CLOSE_WAIT   (over within microseconds" in text
    assert "  7           CLOSE        CLOSE        (after TIME_WAIT's 60 s" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--live"], "--live does not apply to a listing: it goes with --scenario NAME"),
        (["--scenario", "half-close"], "'half-close' is not one of 'open', 'close'"),
        (["--scenario", "close", "--explain", "TIME_WAIT"], "it tells its own story"),
        (["--scenario", "close", "-o", "csv"], "-o csv does not apply to --scenario"),
        (
            ["--scenario", "close", "--live", "--from", "/nonexistent"],
            "--from does not apply to --scenario: --live plays on this host's loopback",
        ),
        (["--scenario", "close", "--watch"], "--watch does not apply to --scenario"),
    ],
)
def test_bad_values_are_one_line_exit_2(cli, args: list[str], needle: str) -> None:
    done = cli.process(*args)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and done.stderr.count("\n") == 1 and done.stdout == ""
