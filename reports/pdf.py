"""The report as PDF, drawn with fpdf2: pure Python, no browser, no network.

Text is set in DejaVu Sans, the TrueType font matplotlib ships (already a dependency),
so every character the report uses (—, ≥, ∞, accents in names) prints as itself.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace

from reports.document import Document, Table

_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FAMILY = "DejaVu"


def _pdf() -> FPDF:
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_font(FAMILY, "", str(_FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FAMILY, "B", str(_FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title("Algorithmic Impact Assessment")
    pdf.set_creator("Fairlane")
    pdf.add_page()
    return pdf


def _table(pdf: FPDF, table: Table) -> None:
    pdf.set_font(FAMILY, "B", 9)
    pdf.multi_cell(0, 5, table.caption, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 7.5)
    with pdf.table(
        headings_style=FontFace(emphasis="BOLD", fill_color=(232, 232, 232)),
        line_height=4,
        first_row_as_headings=True,
    ) as drawn:
        for row in [table.columns, *table.rows]:
            cells = drawn.row()
            for value in row:
                cells.cell(value)
    pdf.ln(3)


def render_pdf(document: Document) -> bytes:
    pdf = _pdf()
    pdf.set_font(FAMILY, "B", 15)
    pdf.multi_cell(0, 8, document.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 9)
    for label, value in document.facts:
        pdf.multi_cell(0, 5, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    for section in document.sections:
        pdf.ln(3)
        pdf.set_font(FAMILY, "B", 12)
        pdf.multi_cell(0, 7, section.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FAMILY, "", 9)
        for paragraph in section.paragraphs:
            pdf.multi_cell(0, 5, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
        for table in section.tables:
            if table.rows:
                _table(pdf, table)
    return bytes(pdf.output())
