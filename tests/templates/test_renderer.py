"""chronogram.caption_templates: the strict {{variable}} renderer, alone (no I/O)."""

from __future__ import annotations

import pytest

from chronogram.caption_templates import MissingVariables, TemplateSyntaxError, compile_template, render


def test_placeholders_are_replaced_and_the_rest_is_kept_exactly() -> None:
    text = "  Hello {{name}},\n\tsee you at {{ place }} on {{day}}!  "
    assert render(text, {"name": "Ada", "place": "the bakery", "day": "Monday"}) == (
        "  Hello Ada,\n\tsee you at the bakery on Monday!  "
    )


def test_variables_are_listed_once_in_order_of_first_use() -> None:
    assert compile_template("{{b}} {{a}} {{b}} {{ c }}").variables == ("b", "a", "c")


def test_values_are_inserted_verbatim_and_never_rendered_again() -> None:
    values = {"a": "{{b}} <b>&amp;</b> ", "b": "never"}
    assert render("[{{a}}]", values) == "[{{b}} <b>&amp;</b> ]"


def test_every_missing_variable_is_named() -> None:
    with pytest.raises(MissingVariables) as raised:
        render("{{greeting}} {{name}}, {{greeting}} {{place}}", {"name": "Ada"})
    assert raised.value.names == ("greeting", "place")
    assert str(raised.value) == "missing variables: greeting, place"


def test_unused_variables_are_ignored() -> None:
    assert render("plain", {"unused": "x"}) == "plain"


def test_an_escaped_opening_is_literal() -> None:
    assert render(r"literal \{{name}} and {{name}}", {"name": "Ada"}) == "literal {{name}} and Ada"


def test_a_lone_closing_is_plain_text() -> None:
    assert render("a }} b", {}) == "a }} b"


@pytest.mark.parametrize(
    ("text", "position", "says"),
    [
        ("hi {{user.name}}", 3, "not a variable"),
        ("{{ name | upper }}", 0, "not a variable"),
        ("{{ __class__.__mro__ }}", 0, "not a variable"),
        ("{{ 1 + 1 }}", 0, "not a variable"),
        ("{{ name() }}", 0, "not a variable"),
        ("x {{}}", 2, "empty placeholder"),
        ("{{name", 0, "never closed"),
        ("{{{name}}}", 0, "not a variable"),
        ("{{" + "a" * 65 + "}}", 0, "at most 64"),
    ],
)
def test_anything_but_a_name_between_the_braces_is_a_syntax_error(
    text: str, position: int, says: str
) -> None:
    with pytest.raises(TemplateSyntaxError) as raised:
        compile_template(text)
    assert raised.value.position == position
    assert says in raised.value.message


def test_non_ascii_names_are_refused_but_non_ascii_text_is_kept() -> None:
    assert render("Café {{x}} ☕", {"x": "crème"}) == "Café crème ☕"
    with pytest.raises(TemplateSyntaxError):
        compile_template("{{café}}")
