"""Release reports and the plan summary reviewers approve are Markdown built from values a user
or an archive chose: no value may add a line or markup (issue 20, item 10). Both sides of the
boundary are here, bikeshare's report (`code_span`) and the Dagger module's copy, which cannot
import bikeshare; in test/pipeline because it reads ci/src."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bikeshare.deploy.release import Outcome
from bikeshare.deploy.report import ReleaseRecord, code_span
from bikeshare_ci.release import _pins_markdown

ENDPOINT = "bikeshare-staging"
# Backtick runs of every length up to four, line breaks of every kind Markdown knows, and what
# would follow them: a heading, a list item, HTML.
HOSTILE = "s3://b/m`x``y```z````\n# Heading\r- item\r\n<img src=x onerror=alert(1)>`"


def inline_tokens(markdown: str) -> list[Token]:
    """Every inline child token of a CommonMark document, in order."""
    return [
        child
        for token in MarkdownIt("commonmark").parse(markdown)
        if token.type == "inline"
        for child in token.children or []
    ]


@pytest.mark.parametrize("value", [HOSTILE, "`", "``", " ` ", "a` b", "plain", " x "])
def test_a_code_span_holds_any_value_in_one_span_on_one_line(value: str) -> None:
    for span in (code_span(value), _ci_code_span(value)):
        assert "\n" not in span
        assert "\r" not in span
        (token,) = inline_tokens(f"- value: {span}")[1:]
        assert token.type == "code_inline", span
        shown = value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
        assert token.content == shown


def _ci_code_span(value: str) -> str:
    """The Dagger module's copy of code_span, read back from the summary it writes."""
    pins = {"from_endpoint": ENDPOINT, "config": value, "image_uri": "i", "model_data": "m",
            "override": "no"}  # fmt: skip
    line = _pins_markdown(pins, dry_run=True).splitlines()[2]
    return line.removeprefix(f"- {code_span(ENDPOINT)} serves: ")


def test_a_report_with_hostile_values_keeps_its_shape() -> None:
    record = ReleaseRecord(command="rollback", endpoint_name=ENDPOINT)
    record.asked = {"to config": HOSTILE, "image": HOSTILE}
    record.outcome = Outcome(ENDPOINT, HOSTILE, HOSTILE, HOSTILE, plan=[HOSTILE])
    record.serving_now = HOSTILE
    record.error = f"endpoint config {HOSTILE} does not exist\n```\n# not a heading"
    record.log = [f"rolling back to {HOSTILE}", "```", "</details>"]
    written = record.markdown()
    tokens = MarkdownIt("commonmark").parse(written)
    assert [t.type for t in tokens if t.type == "heading_open"] == ["heading_open"]
    assert not [t for t in tokens if t.type in ("html_inline", "image", "link_open")]
    spans = [t.content for t in inline_tokens(written) if t.type == "code_inline"]
    shown = HOSTILE.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    assert spans.count(shown) >= 5, spans  # to config, image, previous, new, serving now
    fences = [t for t in tokens if t.type == "fence"]
    error = record.error.replace("\r\n", "\n").replace("\r", "\n")
    log = "\n".join(record.log).replace("\r\n", "\n").replace("\r", "\n")
    assert [f.content for f in fences] == [error + "\n", log + "\n"]


def test_a_dry_run_plan_with_hostile_values_is_one_list_item_of_plain_text() -> None:
    record = ReleaseRecord(command="deploy", endpoint_name=ENDPOINT)
    record.outcome = Outcome(ENDPOINT, "n", None, None, plan=[f"  model data:   {HOSTILE}"],
                             dry_run=True)  # fmt: skip
    tokens = MarkdownIt("commonmark").parse(record.markdown())
    assert [t.type for t in tokens if t.type.endswith("list_open")] == [
        "bullet_list_open",  # duration
        "ordered_list_open",  # the plan: one step, one item
    ]
    assert len([t for t in tokens if t.type == "list_item_open" and t.markup == "."]) == 1
    (text,) = [t for t in tokens if t.type == "inline" and "model data" in t.content]
    assert {child.type for child in text.children or []} == {"text"}
    shown = HOSTILE.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    assert "".join(c.content for c in text.children or []) == f"model data:   {shown}"


def test_the_plan_summary_reviewers_approve_keeps_its_shape() -> None:
    pins = {"from_endpoint": ENDPOINT, "config": HOSTILE, "image_uri": HOSTILE,
            "model_data": HOSTILE, "override": "yes"}  # fmt: skip
    written = _pins_markdown(pins, dry_run=True)
    tokens = MarkdownIt("commonmark").parse(written)
    assert [t.type for t in tokens if t.type == "heading_open"] == ["heading_open"]
    assert len([t for t in tokens if t.type == "list_item_open"]) == 3
    assert not [t for t in tokens if t.type in ("html_block", "html_inline")]
    shown = HOSTILE.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    spans = [t.content for t in inline_tokens(written) if t.type == "code_inline"]
    assert spans.count(shown) == 3
