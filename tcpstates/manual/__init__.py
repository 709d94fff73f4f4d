"""``tcpstates help [TOPIC]``: the installed manual pages, wherever MANPATH looks."""
