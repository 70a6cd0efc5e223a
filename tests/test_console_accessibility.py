"""The console's templates and style sheet, checked for what keyboard and screen-reader
users need: a label on every field, one ``h1`` a page, a name on every link and button,
a visible focus, and text colours with WCAG AA contrast. The same checks run on the
rendered pages in ``test_console_pages.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from console.charts import COLOURS
from tests.fixtures.accessibility import contrast, css_variables, problems

CONSOLE = Path(__file__).resolve().parents[1] / "console"
TEMPLATES = sorted((CONSOLE / "templates").glob("*.html"))
PAGES = [t for t in TEMPLATES if '{% extends "base.html" %}' in t.read_text()]
CSS = (CONSOLE / "static" / "console.css").read_text()


def test_every_page_template_is_checked() -> None:
    assert {t.name for t in PAGES} >= {"incident.html", "signoff.html", "audit.html"}


@pytest.mark.parametrize("template", PAGES, ids=lambda t: t.name)
def test_a_page_has_one_h1(template: Path) -> None:
    assert len(re.findall(r"<h1\b", template.read_text())) == 1


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_every_field_is_labelled_and_every_control_named(template: Path) -> None:
    assert problems(template.read_text(), whole_page=False) == []


def test_the_checks_catch_what_they_look_for() -> None:
    unlabelled = '<html lang="en"><h1>x</h1><input name="q"><a href="/"></a></html>'
    assert problems(unlabelled) == [
        "<input name='q'> has no label",
        "<a {'href': '/'}> has no accessible name",
    ]
    assert problems("<html><p>no heading</p></html>") == [
        "0 h1 elements, not one",
        "the html element has no lang",
    ]
    labelled = (
        '<html lang="en"><h1>x</h1><label>Q <input name="q"></label>'
        '<label for="c">C</label><textarea id="c"></textarea><button>Go</button></html>'
    )
    assert problems(labelled) == []


def test_focus_is_always_drawn() -> None:
    focus = re.search(r"([^{}]*):focus[^{]*\{([^}]*)\}", CSS)
    assert focus is not None and "outline: 3px solid" in focus.group(2)
    for control in ("a:focus", "button:focus", "input:focus", "select:focus", "textarea:focus"):
        assert control in CSS
    assert not re.search(r"outline:\s*(none|0)\b", CSS)
    assert ".skip:focus" in CSS  # the skip link shows itself when tabbed to


def _colour(name: str) -> str:
    return css_variables(CSS)[name] if name.startswith("--") else name


@pytest.mark.parametrize(
    ("text", "background"),
    [
        ("--fg", "--bg"),
        ("--fg", "--card"),
        ("--muted", "--bg"),
        ("--muted", "--card"),
        ("--link", "--bg"),
        ("--link", "--card"),
        ("--ok", "--card"),
        ("--bad", "--card"),
        ("#ffffff", "#0b4fa8"),  # buttons
        ("#ffffff", "--bad"),  # danger buttons
        ("#ffffff", "#102a43"),  # the top bar
        ("#d9e2ec", "#102a43"),  # the roles in the top bar
    ],
)
def test_text_has_aa_contrast(text: str, background: str) -> None:
    assert contrast(_colour(text), _colour(background)) >= 4.5


@pytest.mark.parametrize("verdict", sorted(COLOURS))
def test_chart_marks_stand_out_from_the_chart(verdict: str) -> None:
    assert contrast(COLOURS[verdict], "#ffffff") >= 3.0  # WCAG's bar for graphics
