"""The light front end: the commands people and scripts run most, answered before click loads.

Loading click, the command line's requests and the other commands costs about 40 ms before a
socket is read, as much as reading 50,000 of them. ``parse`` reads the argument lists it
understands completely (a listing or a summary: states, protocols, families, ports, addresses,
the formats, ``--no-owners``, ``-H`` and the habits ``-a -n -p -l``) into the very values the
click command builds; ``run.run_fast`` hands them to the same library functions the click
command calls, on a terminal through the same pager. Anything else and any error go to the
click command, which answers as usual: there is one parser of record, and this one only says
yes or "not mine". tests/test_fastpath.py holds the two to the same values on generated
argument lists, and to the same bytes on real sockets, piped and on a terminal.
"""
