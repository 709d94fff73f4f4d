"""The states a summary lists, in its order, as the kernel's codes and the names it keys them by.

Plain data that imports nothing, so that the summary fast path (fastpath.py) can name its counts
without loading states.py; summary.py builds its state lists from the same tuples, and
tests/test_fastpath.py holds each name to ``states.state_name``.
"""

TCP_SUMMARY: tuple[tuple[int, str], ...] = (
    (1, "ESTABLISHED"), (2, "SYN_SENT"), (3, "SYN_RECV"), (4, "FIN_WAIT1"), (5, "FIN_WAIT2"),
    (6, "TIME_WAIT"), (7, "CLOSE"), (8, "CLOSE_WAIT"), (9, "LAST_ACK"), (10, "LISTEN"),
    (11, "CLOSING"),
)  # fmt: skip
# UDP has no connection states: connect() makes a socket ESTABLISHED, otherwise it is UNCONN.
UDP_SUMMARY: tuple[tuple[int, str], ...] = ((1, "ESTABLISHED"), (7, "UNCONN"))
