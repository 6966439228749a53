"""The few HTML pages of the web app: plain, escaped, without scripts, never cached or framed.

The unsubscribe link carries its token in the URL, so the pages send no referrer and are not stored.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

from forewarn.records import Channel

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}

_CHANNEL_WORDS = {"email": "emails", "sms": "text messages"}


def page(title: str, text: str, *, form: str = "", status_code: int = 200) -> HTMLResponse:
    """A small page: a heading, a paragraph, and optionally a form (given as markup, already escaped)."""
    body = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex\">"
        f"<title>{escape(title)}</title></head>\n"
        "<body style=\"font-family: sans-serif; max-width: 36em; margin: 3em auto; padding: 0 1em; "
        "line-height: 1.5\">\n"
        f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>\n{form}</body>\n</html>\n"
    )
    return HTMLResponse(body, status_code=status_code, headers=HEADERS)


def confirm(token: str, channel: Channel) -> HTMLResponse:
    """The page an unsubscribe link opens: one button that POSTs the same link (a GET changes nothing)."""
    form = (f"<form method=\"post\" action=\"unsubscribe?t={escape(token)}\">"
            "<button type=\"submit\" style=\"font-size: 1.1em; padding: 0.5em 1.2em\">Unsubscribe</button>"
            "</form>\n")
    return page("Unsubscribe", f"Stop receiving service {_CHANNEL_WORDS[channel]} from us? We will not send you "
                "any more unless you sign up again.", form=form)


def done(channel: Channel) -> HTMLResponse:
    return page("You are unsubscribed", f"We will not send you any more service {_CHANNEL_WORDS[channel]}. "
                "You can close this page.")
