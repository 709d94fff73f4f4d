"""The help topics and their pages: here, apart from pages.py, so that the command line can
offer them without loading what finds and shows a page (pathlib, sysconfig, subprocess)."""

# topic -> page; the first is what ``tcpstates help`` shows with no topic.
PAGES = {
    "tcpstates": "tcpstates.1",
    "doctor": "tcpstates-doctor.1",
    "kill": "tcpstates-kill.1",
    "top": "tcpstates-top.1",
    "counters": "tcpstates-counters.1",
    "trace": "tcpstates-trace.1",
    "export": "tcpstates-export.1",
    "states": "tcpstates-states.7",
}
TOPICS = tuple(PAGES)
