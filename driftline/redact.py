"""Credentials out of anything Driftline prints, logs, stores or sends back.

A URL may carry ``user:password@`` (a proxy upstream, an action target's server). Wherever such
a URL, or a message that may quote one (an exception from the HTTP client), is shown to someone
- a log line, an audit row, an error body sent to a proxy client, the start-up line - it goes
through :func:`redact_url` or :func:`redact_text` first.

>>> redact_url("https://u:p@host:8443/x?y=1")
'https://host:8443/x?y=1'
>>> redact_text("POST http://admin:s3cret@airflow:8080/api/v1/dags: connection refused")
'POST http://airflow:8080/api/v1/dags: connection refused'
"""

from __future__ import annotations

import re
import urllib.parse

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@?#]*@")


def redact_url(url: str) -> str:
    """Drop ``user:password@`` from a URL."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def redact_text(text: str) -> str:
    """Drop the user-info of every URL quoted in free text."""
    if "@" not in text:
        return text
    return _USERINFO.sub(r"\g<scheme>", text)
