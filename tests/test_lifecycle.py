from tcpstates.model import lifecycle
from tcpstates.model.lifecycle import SCENARIOS, Side
from tcpstates.model.states import TcpState as S


def test_every_state_but_unknown_is_reachable_from_close():
    seen, frontier = {S.CLOSE}, [S.CLOSE]
    while frontier:
        state = frontier.pop()
        for t in lifecycle.transitions_out_of(state):
            if t.target not in seen:
                seen.add(t.target)
                frontier.append(t.target)
    assert seen == set(S) - {S.UNKNOWN}


def test_scenarios_are_chains_of_real_transitions():
    for scenario in SCENARIOS.values():
        a, b = scenario.a_start, scenario.b_start
        for step in scenario.steps:
            current = a if step.end == "a" else b
            assert step.transition.source is current, (scenario.name, step)
            if step.end == "a":
                a = step.transition.target
            else:
                b = step.transition.target


def test_seed_normal_close():
    # The seed: a closes (FIN_WAIT1), b gets FIN (CLOSE_WAIT), a gets ACK (FIN_WAIT2),
    # b closes (LAST_ACK), a acknowledges (TIME_WAIT), b is done (CLOSE), a waits, then CLOSE.
    timeline = SCENARIOS["close"].timeline()
    a_states = [a for step, a, b in timeline if step.end == "a"]
    b_states = [b for step, a, b in timeline if step.end == "b"]
    assert a_states == [S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT, S.CLOSE]
    assert b_states == [S.CLOSE_WAIT, S.LAST_ACK, S.CLOSE]


def test_seed_simultaneous_close_passes_through_closing():
    # The seed: a in FIN_WAIT1 gets b's FIN instead of the ACK (CLOSING), then the ACK
    # (TIME_WAIT). b, whose FIN a acknowledged first, goes through FIN_WAIT2, as a real
    # kernel does on loopback (test_scenarios plays it live).
    timeline = SCENARIOS["simultaneous-close"].timeline()
    a_states = [a for step, a, b in timeline if step.end == "a"]
    b_states = [b for step, a, b in timeline if step.end == "b"]
    assert a_states == [S.FIN_WAIT1, S.CLOSING, S.TIME_WAIT, S.CLOSE]
    assert b_states == [S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT, S.CLOSE]
    assert lifecycle.transition(S.FIN_WAIT1, S.CLOSING).event == "rcv FIN / snd ACK"


def test_what_a_transition_sends_is_what_its_event_says():
    for t in lifecycle.TRANSITIONS:
        sent = t.event.split(" snd ", 1)[1].split()[0] if " snd " in t.event else None
        assert t.sends == sent, t


def test_sides_follow_from_transitions():
    assert lifecycle.sides(S.CLOSE_WAIT) == (Side.PASSIVE_CLOSER,)
    assert lifecycle.sides(S.FIN_WAIT2) == (Side.ACTIVE_CLOSER,)
    assert set(lifecycle.sides(S.TIME_WAIT)) == {Side.ACTIVE_CLOSER, Side.SIMULTANEOUS}
    assert lifecycle.sides(S.SYN_SENT) == (Side.ACTIVE_OPENER,)
