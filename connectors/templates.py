"""Message text from Jinja2 templates under `config/templates/`, chosen per topic.

Lookup order for a message, most specific first:
`{topic}.{kind}.{channel}.{language}.j2`, `{family}.{kind}.{channel}.{language}.j2`,
`{topic}.{kind}.{channel}.j2`, `{family}.{kind}.{channel}.j2`, where the family is `default`
for incidents. Hazard messages are their own family (`hazard`, with other variables), so they
never fall back to an incident template.
Email templates start with a `Subject: ...` line followed by a blank line.

The HTML part of an email (`render_html`) comes from the HTML sibling of the text template the
message is rendered from: `default.warning.email.es.j2` has `default.warning.email.es.html.j2`
(autoescaped, no Subject line). Where a text template has no HTML sibling, the HTML is the text
itself, escaped into paragraphs (`text_to_html`): the two parts of an email always say the same.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import jinja2
from jinja2 import meta

from forewarn.interfaces import Rendered
from forewarn.localtime import LocalTime
from forewarn.records import Channel, MessageKind, template_kind


class JinjaRenderer:
    """Renders messages from a template folder; strict about undefined variables."""

    def __init__(self, directory: Path):
        if not directory.is_dir():
            raise ValueError(f"template folder {directory} does not exist: set outreach.templates to a folder")
        self.directory = directory
        self._names_others: dict[str, bool] = {}
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )
        self._html_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=True,
            keep_trailing_newline=False,
        )

    def candidates(self, topic: str, kind: MessageKind, channel: Channel, language: str,
                   family: str = "default") -> list[str]:
        """Template names to try, first found wins.

        >>> from forewarn.settings import BUNDLED_CONFIG
        >>> renderer = JinjaRenderer(BUNDLED_CONFIG / "templates")
        >>> renderer.candidates("hazard", "warning", "email", "es", family="hazard")
        ['hazard.warning.email.es.j2', 'hazard.warning.email.j2']
        """
        # The customer's language comes before the topic: a Spanish speaker is better
        # served by the general Spanish text than by the English topic text.
        kind = template_kind(kind)  # type: ignore[assignment]  # the file name's kind: every update shares one
        return list(dict.fromkeys([
            f"{topic}.{kind}.{channel}.{language}.j2",
            f"{family}.{kind}.{channel}.{language}.j2",
            f"{topic}.{kind}.{channel}.j2",
            f"{family}.{kind}.{channel}.j2",
        ]))

    def names_others(self, topic: str) -> bool:
        """Whether every warning template `topic` may use names the overlapping incidents its warning carries
        (`also_labels`): only then may its warning carry them (`outreach.covering`).

        >>> from forewarn.settings import BUNDLED_CONFIG
        >>> JinjaRenderer(BUNDLED_CONFIG / "templates").names_others("no_internet")
        True
        """
        if (known := self._names_others.get(topic)) is not None:
            return known  # asked at every warning pass: the folder is read once per topic
        names = [n for n in self._env.list_templates() if n.startswith((f"{topic}.warning.", "default.warning."))]
        loader = self._env.loader
        assert loader is not None
        known = self._names_others[topic] = bool(names) and all(
            "also_labels" in meta.find_undeclared_variables(self._env.parse(loader.get_source(self._env, n)[0]))
            for n in names)
        return known

    def _select(self, topic: str, kind: MessageKind, channel: Channel, context: Mapping[str, object],
                family: str) -> jinja2.Template:
        names = self.candidates(topic, kind, channel, str(context.get("language", "en")), family)
        try:
            return self._env.select_template(names)
        except jinja2.TemplatesNotFound:
            raise ValueError(f"no template for {kind} on {channel}: add {names[-1]} to {self.directory}") from None

    def render(self, topic: str, kind: MessageKind, channel: Channel, context: Mapping[str, object],
               family: str = "default") -> Rendered:
        template = self._select(topic, kind, channel, context, family)
        text = template.render(**_in_language(context, _template_language(template.name))).strip()
        if channel != "email":
            return Rendered(None, text)
        first, _, rest = text.partition("\n")
        if first.startswith("Subject:"):
            return Rendered(first.removeprefix("Subject:").strip(), rest.strip())
        return Rendered(f"Service notice: {context.get('topic_label', '')}".strip(), text)

    def render_html(self, topic: str, kind: MessageKind, context: Mapping[str, object], family: str = "default",
                    *, text: str | None = None) -> str:
        """The HTML part of an email: the text template's HTML sibling when there is one, else the text
        escaped into paragraphs. `text` is the body `render` gave for the same message (spares rendering
        it again when there is no HTML template).

        >>> from forewarn.settings import BUNDLED_CONFIG
        >>> renderer = JinjaRenderer(BUNDLED_CONFIG / "templates")
        >>> print(renderer.render_html("hazard", "resolved", {"event": "Flood <Warning>", "incident_id": "HZ-1"},
        ...                            family="hazard"))  # doctest: +ELLIPSIS
        <!DOCTYPE html>
        ...<p>Hello,</p>
        <p>The Flood &lt;Warning&gt; we wrote to you about has been withdrawn; ...</p>
        <p>Reference: HZ-1</p>
        </body>
        </html>
        """
        template = self._select(topic, kind, "email", context, family)
        language = _template_language(template.name)
        sibling = f"{(template.name or '').removesuffix('.j2')}.html.j2"
        if (self.directory / sibling).is_file():
            return self._html_env.get_template(sibling).render(**_in_language(context, language)).strip()
        if text is None:
            text = self.render(topic, kind, "email", context, family).body
        return text_to_html(text, language)

    def render_document(self, topic: str, document: str, context: Mapping[str, object]) -> str:
        """A document about an incident, e.g. `article.md` (Markdown) or `script.txt`: from
        `{topic}.{document}.j2`, else `default.{document}.j2`; ends with one newline.

        Whatever a value holds stays inert text (`document_value`): folded onto one line, without
        control characters, and in Markdown with every character that Markdown, HTML or a site
        generator's `{{ }}` would read escaped, so a note saying `<script>` shows as those characters.
        Blocks take their own line (`trim_blocks`, `lstrip_blocks`).
        """
        names = list(dict.fromkeys([f"{topic}.{document}.j2", f"default.{document}.j2"]))
        try:
            template = _document_env(self.directory, document.endswith(".md")).select_template(names)
        except jinja2.TemplatesNotFound:
            raise ValueError(f"no template for the {document} document: add {names[-1]} to {self.directory}") from None
        return template.render(**_in_language(context, "en")).strip() + "\n"

    def check(self, topics: list[str]) -> None:
        """Fail at start-up, not mid-incident, when a default template is missing or broken."""
        for kind in ("warning", "resolved"):
            for channel in ("sms", "email"):
                for topic in [*topics, "default"]:
                    for name in self.candidates(topic, kind, channel, "en"):  # type: ignore[arg-type]
                        if (self.directory / name).exists():
                            self._env.get_template(name)
                        if channel == "email" and (self.directory / f"{name.removesuffix('.j2')}.html.j2").exists():
                            self._html_env.get_template(f"{name.removesuffix('.j2')}.html.j2")
                if not (self.directory / f"default.{kind}.{channel}.j2").exists():
                    raise ValueError(f"template default.{kind}.{channel}.j2 is missing from {self.directory}")


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#!|~&$])")
_BLOCK_START = re.compile(r"^(\d{0,9})([-+=.)])(?=\s|$)")


def document_value(value: object, markdown: bool) -> str:
    r"""`value` as inert text for a document: on one line, without control characters; for Markdown, with
    a backslash before every character that could start emphasis, code, a link, an image, raw HTML, an
    entity, a table cell or a site generator's `{{ }}` (CommonMark shows `\<` as `<`), and before a
    leading list or heading marker.

    >>> document_value("crews on site\n- call 555", markdown=False)
    'crews on site - call 555'
    >>> print(document_value("1. [win](https://evil.example) & <script>{{ 7*7 }}", markdown=True))
    1\. \[win\]\(https://evil.example\) \& \<script\>\{\{ 7\*7 \}\}
    """
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    if not markdown:
        return text
    return _BLOCK_START.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", text))


@lru_cache(maxsize=16)
def _document_env(directory: Path, markdown: bool) -> jinja2.Environment:
    """The environment for documents of one format: every `{{ value }}` passes `document_value`."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=lambda value: document_value(value, markdown),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def text_to_html(text: str, language: str = "en") -> str:
    """`text` as a small HTML document: escaped, blank lines between paragraphs, line breaks kept.

    >>> print(text_to_html("Hello <Ana>,\\n\\nLine one\\nline two & more."))
    <!DOCTYPE html>
    <html lang="en">
    <head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"></head>
    <body style="font-family: sans-serif; line-height: 1.5">
    <p>Hello &lt;Ana&gt;,</p>
    <p>Line one<br>
    line two &amp; more.</p>
    </body>
    </html>
    """
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    body = "\n".join("<p>" + "<br>\n".join(html.escape(line.strip()) for line in p.split("\n")) + "</p>"
                     for p in paragraphs)
    return ("<!DOCTYPE html>\n"
            f'<html lang="{html.escape(language)}">\n'
            '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
            '<body style="font-family: sans-serif; line-height: 1.5">\n'
            f"{body}\n"
            "</body>\n"
            "</html>")


def _template_language(name: str | None) -> str:
    """The language a template is written in: `topic.kind.channel.es.j2` is Spanish, no code is English.

    >>> _template_language("default.warning.sms.es.j2"), _template_language("hazard.warning.sms.j2")
    ('es', 'en')
    """
    parts = (name or "").split(".")
    return parts[3] if len(parts) == 5 else "en"


def _in_language(context: Mapping[str, object], language: str) -> dict[str, object]:
    """The context with its times spelled in the template's language (see `forewarn.localtime`)."""
    return {k: v.in_language(language) if isinstance(v, LocalTime) else v for k, v in context.items()}
