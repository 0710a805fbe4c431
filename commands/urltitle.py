"""URL titles: the title of a web page linked in a channel, as ``[ Title ] - host``.

On in every channel unless ``enabled: false`` (``modules: {urltitle: {enabled:
false}}``, or in one channel's ``modules:``; ``disable: [urltitle]`` works too).
Links in actions (``/me``) count too; links in private messages are never
fetched. At most ``max_links`` links of a line are looked at, and a link's
title is said at most once per channel every ``repeat_window`` seconds (a
repeat does not count towards ``max_links``; a link that got no title is tried
again when it is said again). Links to ``ignore_domains`` (and their
subdomains) are never fetched, and at most two pages are fetched at once (more
links meanwhile are skipped, so slow sites cannot hold the workers that answer
commands). Only ``text/html`` and XHTML answers have a title: the page's
``<title>``, else its ``og:title``. Anything that goes wrong (no answer, an
error status, no title) is silent, logged at debug. A command line with a link
(``!wiki https://...``) is a line like any other: its link gets a title too.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlsplit

from bot.api import Context, Event, FetchError, on_event, on_message

from ._common import clip, irc_lower, one_line

HTML_TYPES = ("text/html", "application/xhtml+xml")
REMEMBERED = 2_000  # links kept for repeat_window, all channels together
# Pages fetched at once, all channels together: a flood of links to slow sites
# must not hold the workers that answer commands.
AT_ONCE = 2
_LINK = re.compile(r"""https?://[^\s<>"'`]+""", re.I)


@dataclass(frozen=True)
class Settings:
    """modules: {urltitle: {...}} in config.yaml (or a channel's modules:)."""

    enabled: bool = True
    max_links: int = 3  # links looked at per line
    repeat_window: int = 1800  # seconds before the same link is looked at again in a channel
    ignore_domains: tuple[str, ...] = ()  # e.g. ["example.com"]: also www.example.com
    max_length: int = 200  # characters of a title
    timeout: float = 5.0  # seconds for one page
    max_bytes: int = 512 * 1024  # of a page read for its title

    def __post_init__(self) -> None:
        if not 1 <= self.max_links <= 10:
            raise ValueError("max_links must be 1 to 10")
        if self.repeat_window < 0:
            raise ValueError("repeat_window must be 0 or more seconds")
        if not 10 <= self.max_length <= 400:
            raise ValueError("max_length must be 10 to 400")
        if not 0 < self.timeout <= 30:
            raise ValueError("timeout must be more than 0 and at most 30 seconds")
        if not 1024 <= self.max_bytes <= 4 * 1024 * 1024:
            raise ValueError("max_bytes must be 1024 to 4194304")


def now() -> float:
    """The clock of repeat_window (one place, so tests can move it)."""
    return time.monotonic()


class Recent:
    """The links looked at lately, per channel: at most ``REMEMBERED`` of them."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, channel: str, link: str, window: float) -> bool:
        """Whether ``link`` was not looked at in ``channel`` in the last ``window`` s; notes it."""
        key, current = (irc_lower(channel), link), now()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and current - seen < window:
                return False
            self._seen[key] = current
            self._seen.move_to_end(key)
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)  # the oldest
            return True

    def forget(self, channel: str, link: str) -> None:
        with self._lock:
            self._seen.pop((irc_lower(channel), link), None)


_recent = Recent()
_fetching = threading.BoundedSemaphore(AT_ONCE)


@on_message(r"(?i)https?://")
def titles(ctx: Context, match: re.Match[str]) -> list[str] | None:
    return titles_in(ctx, match.string)


@on_event("action")
def titles_in_action(ctx: Context, event: Event) -> list[str] | None:
    """``/me recommends https://...`` gets its title too."""
    return titles_in(ctx, event.text) if "://" in event.text else None


def titles_in(ctx: Context, text: str) -> list[str] | None:
    """The titles to say for the links in ``text``, said in ``ctx.channel``."""
    if ctx.channel is None:
        return None  # private stays private
    settings: Settings = ctx.settings
    if not settings.enabled:
        return None
    lines, looked = [], 0
    for link in links(text):
        if looked == settings.max_links:
            break
        if ignored(host_of(link), settings.ignore_domains):
            continue
        if not _recent.first_time(ctx.channel, link, settings.repeat_window):
            continue
        looked += 1
        line = None
        if _fetching.acquire(blocking=False):
            try:
                line = announce(ctx, link, settings)
            finally:
                _fetching.release()
        else:
            ctx.log.debug("no title for %s: %d pages are being fetched already", link, AT_ONCE)
        if line:
            lines.append(line)
        else:  # said again, it is tried again: only titles said count as repeats
            _recent.forget(ctx.channel, link)
    return lines


def links(text: str) -> list[str]:
    """The http(s) links in ``text``, once each, without trailing punctuation or fragment."""
    found: list[str] = []
    for raw in _LINK.findall(text):
        link = raw.rstrip(".,;:!?")
        while link.endswith(")") and link.count(")") > link.count("("):
            link = link[:-1].rstrip(".,;:!?")  # (see https://example.com/x)
        link = urldefrag(link).url  # the fragment is not sent to the server
        if host_of(link) and link not in found:
            found.append(link)
    return found


def host_of(link: str) -> str:
    try:
        return (urlsplit(link).hostname or "").rstrip(".")
    except ValueError:  # a bad port or IPv6 literal
        return ""


def ignored(host: str, domains: tuple[str, ...]) -> bool:
    """Whether ``host`` is one of ``domains`` or under one of them."""
    for domain in domains:
        domain = domain.lower().strip().lstrip("*").strip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def announce(ctx: Context, link: str, settings: Settings) -> str | None:
    """``[ Title ] - host`` for ``link``, or None (logged at debug) when there is none."""
    try:
        response = ctx.fetch(
            link,
            headers={"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"},
            max_bytes=settings.max_bytes,
            timeout=settings.timeout,
        )
        if not response.ok:
            ctx.log.debug("no title for %s: it answered %d", link, response.status)
            return None
        if response.content_type not in HTML_TYPES:
            ctx.log.debug("no title for %s: %s", link, response.content_type or "no type")
            return None
        title = find_title(response.text)
    except FetchError as exc:
        ctx.log.debug("no title for %s: %s (%s)", link, exc, exc.reason)
        return None
    except (LookupError, ValueError) as exc:  # an unknown or wrong charset
        ctx.log.debug("no title for %s: %s", link, exc)
        return None
    if not title:
        ctx.log.debug("no title for %s: the page has none", link)
        return None
    host = host_of(response.url) or host_of(link)
    if ignored(host, settings.ignore_domains):
        ctx.log.debug("no title for %s: it led to %s, an ignored domain", link, host)
        return None
    return f"[ {clip(title, settings.max_length)} ] - {host}"


class _Found(Exception):
    """Stops the parser once it has what it needs."""


class _TitleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities are unescaped for us
        self.title: str | None = None
        self.og_title: str | None = None
        self._parts: list[str] | None = None  # inside <title>
        self._svg = 0  # an <svg> has <title>s of its own

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self._svg += 1
        elif tag == "title" and not self._svg and self.title is None:
            self._parts = []
        elif tag == "meta" and self.og_title is None:
            values = {name: value or "" for name, value in attrs}
            if "og:title" in (values.get("property"), values.get("name")):
                self.og_title = one_line(values.get("content", "")) or None
        elif tag == "body" and self.og_title:
            raise _Found  # a page's <title> and <meta>s are in its head

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = max(0, self._svg - 1)
        elif tag == "title" and self._parts is not None:
            self.title, self._parts = one_line("".join(self._parts)) or None, None
            if self.title:
                raise _Found
        elif tag == "head" and self.og_title:
            raise _Found

    def handle_data(self, data: str) -> None:
        if self._parts is not None:
            self._parts.append(data)

    def cut_title(self) -> str | None:
        """What a page cut off inside its ``<title>`` (at max_bytes) had of it."""
        return (one_line("".join(self._parts)) or None) if self._parts else None


def find_title(html: str) -> str | None:
    """The page's ``<title>``, else its ``og:title``: one line, entities unescaped."""
    parser = _TitleParser()
    try:
        parser.feed(html)
        parser.close()
    except _Found:
        pass
    return parser.title or parser.cut_title() or parser.og_title
