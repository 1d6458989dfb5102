"""Caption templates: a small, strict renderer for ``{{variable}}`` placeholders. Pure, no I/O.

The whole language, on purpose (nothing here can run code or reach an attribute):

- ``{{ name }}`` is replaced by the value of the variable ``name``. Names are ASCII letters, digits and ``_``, not
  starting with a digit, at most 64 characters; spaces inside the braces are allowed and ignored. Nothing else
  goes between the braces: no dots, no filters, no expressions (``{{ a.b }}``, ``{{ a | upper }}``: a syntax
  error).
- Escaping: ``\\{{`` writes a literal ``{{`` (the backslash is dropped). A ``}}`` outside a placeholder is plain
  text. A ``{{`` that does not close on the same placeholder (``{{name``) is a syntax error.
- Values are inserted exactly as given: no trimming, no HTML escaping (a caption is plain text), and never
  rendered again, so a value holding ``{{x}}`` stays as it is.
- Whitespace and line breaks of the template are kept as they are.
- Every variable the template uses must be given: the missing ones are reported together (``MissingVariables``).
  Variables given but not used are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_VARIABLE_NAME_CHARS = 64

# One token at a time: an escaped opening, a placeholder, or an opening that is neither (an error).
_TOKEN = re.compile(r"\\\{\{|\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}|\{\{")


class TemplateSyntaxError(ValueError):
    """The template is not well formed; ``position`` is the offset of the offending ``{{``."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(f"at character {position}: {message}")
        self.position = position
        self.message = message


class MissingVariables(KeyError):
    """The template uses variables that were not given (``names``, in order of first use)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__(", ".join(names))
        self.names = names

    def __str__(self) -> str:
        return f"missing variable{'s' if len(self.names) > 1 else ''}: {', '.join(self.names)}"


@dataclass(frozen=True)
class CompiledTemplate:
    """A parsed template: literal text and variable names, alternating (``parts[0]`` is text)."""

    parts: tuple[str, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        """The variables used, in order of first use, each once."""
        return tuple(dict.fromkeys(self.parts[1::2]))

    def render(self, values: Mapping[str, str]) -> str:
        missing = tuple(name for name in self.variables if name not in values)
        if missing:
            raise MissingVariables(missing)
        return "".join(part if index % 2 == 0 else values[part] for index, part in enumerate(self.parts))


def compile_template(text: str) -> CompiledTemplate:
    """Parse ``text``; raises ``TemplateSyntaxError`` for a ``{{`` that is not a placeholder."""
    parts: list[str] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        token = match.group(0)
        if token == "\\{{":
            literal.append("{{")
        elif match.group(1) is not None:
            parts.append("".join(literal))
            parts.append(match.group(1))
            literal = []
        else:
            raise TemplateSyntaxError(match.start(), _why(text, match.start()))
        position = match.end()
    literal.append(text[position:])
    parts.append("".join(literal))
    return CompiledTemplate(tuple(parts))


def render(text: str, values: Mapping[str, str]) -> str:
    """``compile_template(text).render(values)``."""
    return compile_template(text).render(values)


def _why(text: str, start: int) -> str:
    end = text.find("}}", start + 2)
    if end < 0:
        return "'{{' is never closed; write '\\{{' for a literal '{{'"
    inside = text[start + 2 : end].strip()
    if not inside:
        return "empty placeholder '{{}}'"
    if len(inside) > MAX_VARIABLE_NAME_CHARS and re.fullmatch(r"[A-Za-z_]\w*", inside, re.ASCII):
        return f"variable names are at most {MAX_VARIABLE_NAME_CHARS} characters"
    return (
        f"'{{{{{inside[:40]}}}}}' is not a variable: only names of letters, digits and '_' go between the "
        "braces (no dots, filters or expressions)"
    )
