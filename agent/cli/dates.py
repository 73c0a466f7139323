"""yang:date-and-time values as the router prints them (always in UTC, English names)."""

from __future__ import annotations

import datetime as dt

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_date_time(value: str | None) -> dt.datetime | None:
    """A yang:date-and-time in UTC (a value without zone is taken as UTC); None if empty or not one.

    Raises nothing.
    """
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
