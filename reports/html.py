"""The report as an accessible HTML page: real tables (caption, header cells with scope),
everything escaped, readable on a laptop or a phone, printable."""

from __future__ import annotations

from html import escape

from reports.document import Document, Table

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70em;margin:1.5em auto;padding:0 1em;"
    "color:#111;line-height:1.45}"
    "table{border-collapse:collapse;margin:1em 0;width:100%;font-size:.92em}"
    "caption{text-align:left;font-weight:600;padding:.3em 0}"
    "th,td{border:1px solid #666;padding:.3em .5em;text-align:left;vertical-align:top}"
    "th{background:#e8e8e8}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}"
    "dt{font-weight:600}code{word-break:break-all}"
    ".scroll{overflow-x:auto}@media print{.scroll{overflow:visible}}"
)


def _cell(value: str) -> str:
    numeric = value[:1].isdigit() or (value[:1] in "+-" and value[1:2].isdigit())
    return f'<td class="num">{escape(value)}</td>' if numeric else f"<td>{escape(value)}</td>"


def table_html(table: Table) -> str:
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    return (
        f'<div class="scroll"><table><caption>{escape(table.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def render_html(document: Document) -> str:
    facts = "".join(
        f"<dt>{escape(label)}</dt><dd>{_fact(label, value)}</dd>" for label, value in document.facts
    )
    sections = "".join(
        f"<section><h2>{escape(s.title)}</h2>"
        + "".join(f"<p>{escape(p)}</p>" for p in s.paragraphs)
        + "".join(table_html(t) for t in s.tables)
        + "</section>"
        for s in document.sections
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(document.title)}</title><style>{STYLE}</style></head><body><main>"
        f'<h1>{escape(document.title)}</h1><dl class="facts">{facts}</dl>{sections}'
        "</main></body></html>"
    )


def _fact(label: str, value: str) -> str:
    return f"<code>{escape(value)}</code>" if value.startswith("sha256:") else escape(value)
