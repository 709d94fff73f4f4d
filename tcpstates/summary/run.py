"""--summary and --by: counts per state, for a place, one namespace at a time where several."""

from __future__ import annotations

import json
from collections.abc import Callable

from tcpstates.model.query import Query
from tcpstates.render.output import Output, Skips, say_source
from tcpstates.render.safe import safe

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import TypeVar

    from tcpstates.model.place import Place
    from tcpstates.sources.base import Source
    from tcpstates.sources.namespaced import NamespacedSource
    from tcpstates.summary.groups import Group

    T = TypeVar("T")

FORMATS = ("table", "plain", "json", "jsonl")


def summary(query: Query, place: Place, out: Output, fmt: str | None, verbose: bool) -> None:
    from tcpstates.sources.place import open_place
    from tcpstates.summary import render as render_summary
    from tcpstates.summary.counts import summarize

    source = open_place(place)
    say_source(out, source, verbose)
    fmt = out.resolve_format(fmt)
    if place.several:
        from tcpstates.sources.namespaced import NamespacedSource

        assert isinstance(source, NamespacedSource)
        _per_namespace(source, query, fmt, out, verbose)
        return
    counted = summarize(source, query)
    if fmt == "table":
        out.console().print(render_summary.summary_table(counted))
    elif fmt in ("json", "jsonl"):
        render_summary.render_summary_json(counted, out.stdout)
    else:
        render_summary.render_summary_plain(counted, out.stdout)
    Skips(verbose, out.stderr.write).report(source)


def _per_namespace(
    source: NamespacedSource, query: Query, fmt: str, out: Output, verbose: bool
) -> None:
    """--summary --all-netns: one summary per namespace, keyed by its label."""
    from tcpstates.summary import render as render_summary
    from tcpstates.summary.counts import summarize

    summaries = each_namespace(source, lambda one: summarize(one, query), verbose, out)
    if fmt in ("json", "jsonl"):
        data = {label: counted.as_dict() for label, counted in summaries.items()}
        out.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for i, (label, counted) in enumerate(summaries.items()):
        _netns_heading(label, i, fmt, out)
        if fmt == "table":
            out.console().print(render_summary.summary_table(counted))
        else:
            render_summary.render_summary_plain(counted, out.stdout)


def grouped(
    query: Query, place: Place, by: str, out: Output, fmt: str | None, verbose: bool
) -> None:
    """Counts per state per group: a table with bars on a terminal, JSON (or -o plain) otherwise.

    Several namespaces are grouped one at a time, never added up: port 8080 in two containers
    is two groups.
    """
    from tcpstates.sources.place import open_place

    source = open_place(place)
    say_source(out, source, verbose)
    fmt = fmt or ("table" if out.rich else "json")
    if not place.several:
        groups = _groups(source, query, by)
        Skips(verbose, out.stderr.write).report(source)
        _show_groups(groups, by, fmt, out)
        return
    from tcpstates.sources.namespaced import NamespacedSource

    assert isinstance(source, NamespacedSource)
    per_namespace = each_namespace(source, lambda one: _groups(one, query, by), verbose, out)
    if fmt in ("json", "jsonl"):
        from tcpstates.summary.render_groups import groups_data

        data = {label: groups_data(groups, by) for label, groups in per_namespace.items()}
        out.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for i, (label, groups) in enumerate(per_namespace.items()):
        _netns_heading(label, i, fmt, out)
        _show_groups(groups, by, fmt, out)


def each_namespace(
    source: NamespacedSource, count: Callable[[Source], T], verbose: bool, out: Output
) -> dict[str, T]:
    """``count`` for each namespace ``source`` finds now, one at a time, keyed by its label:
    several namespaces are never added up. What is left out is said as a read says it."""
    results = {}
    skips = Skips(verbose, out.stderr.write)
    each = source.one_by_one()
    skips.report(source)  # what the search passed over
    for one in each:
        result = count(one)
        skips.report(one)
        if one.namespaces:  # not left out: it was there to be read
            results[one.namespaces[0].label] = result
    return results


def _groups(source: Source, query: Query, by: str) -> list[Group]:
    from tcpstates.sources.base import select
    from tcpstates.summary.groups import KEYS, group_sockets

    reading = source.read(query, owners=KEYS[by].needs_owners or query.needs_owners)
    return group_sockets(select(reading, query), by)


def _show_groups(groups: list[Group], by: str, fmt: str, out: Output) -> None:
    from tcpstates.summary import render_groups

    if fmt == "table":
        out.console().print(render_groups.groups_table(groups, by, out.fit_width()))
    elif fmt in ("json", "jsonl"):
        render_groups.render_groups_json(groups, by, out.stdout)
    else:
        render_groups.render_groups_plain(groups, by, out.stdout)


def _netns_heading(label: str, index: int, fmt: str, out: Output) -> None:
    if fmt == "table":
        out.console().print(f"netns {safe(label)}", style="bold", markup=False, highlight=False)
    else:
        out.stdout.write(("\n" if index else "") + f"netns {safe(label)}\n")
