"""The report renderers on a small document: escaping, unicode, and shape checks."""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from reports.document import Document, Section, Table
from reports.html import render_html
from reports.pdf import render_pdf

HOSTILE = '<script>alert("x")</script>'


def _document() -> Document:
    return Document(
        title="Algorithmic Impact Assessment — m",
        facts=[("Its digest", "sha256:" + "0" * 64)],
        sections=[
            Section(
                title="6. The sign-off record",
                paragraphs=["approved ≥ quorum; gap 28.8% → 0.8%"],
                tables=[
                    Table(
                        caption="Who decided",
                        columns=["approver", "comment"],
                        rows=[["zoë.legal", HOSTILE]],
                    )
                ],
            )
        ],
    )


def test_html_escapes_what_people_wrote() -> None:
    """A comment is an approver's text, shown to every reader: it must never run."""
    html = render_html(_document())
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<td>zoë.legal</td>" in html and '<th scope="col">approver</th>' in html


def test_pdf_keeps_every_character() -> None:
    pdf = render_pdf(_document())
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert pdf.startswith(b"%PDF-")
    for expected in ("zoë.legal", "≥", "→", HOSTILE):
        assert expected in text


def test_a_ragged_table_is_refused() -> None:
    with pytest.raises(ValidationError, match="row 0"):
        Table(caption="t", columns=["a", "b"], rows=[["only one"]])
