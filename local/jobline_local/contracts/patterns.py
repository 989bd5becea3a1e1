"""botocore's `pattern` constraints are Java regular expressions (AWS validates with
java.util.regex, whole-value match: `Pattern.matches`). Translate the Java-only constructs the
models use to the `regex` module's syntax; a pattern that still does not compile is reported,
never skipped silently (`untranslatable`)."""

from __future__ import annotations

import re
from functools import cache

import regex

# Java's POSIX character classes (java.util.regex.Pattern, "POSIX character classes (US-ASCII only)").
_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7F",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": "\\x20-\\x7E",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1F\\x7F",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0B\\f\\r",
}
# Java strings are UTF-16: a range written as surrogate pairs means the supplementary planes.
_SURROGATE_RANGE = "\\uD800\\uDC00-\\uDBFF\\uDFFF"
_POSIX_CLASS = re.compile(r"\\p\{(" + "|".join(_POSIX) + r")\}")
# A quantified end anchor (`$` followed by `{1,128}`): Java repeats a zero-width assertion, which
# is the assertion itself.
_QUANTIFIED_END = re.compile(r"\$\{\d+(,\d*)?\}")

untranslatable: dict[str, str] = {}  # Java pattern -> why it could not be translated


def translate(pattern: str) -> str:
    out = pattern.replace(_SURROGATE_RANGE, "\\U00010000-\\U0010FFFF")
    out = _QUANTIFIED_END.sub("$", out)
    pieces, depth, i = [], 0, 0
    while i < len(out):
        if out.startswith(("\\p{java", "\\P{java", "\\Q"), i):
            raise ValueError(f"Java construct {out[i : i + 7]}... has no equivalent here")
        if out[i] == "\\" and i + 1 < len(out):
            match = _POSIX_CLASS.match(out, i)
            if match:
                chars = _POSIX[match.group(1)]
                pieces.append(chars if depth else f"[{chars}]")
                i = match.end()
                continue
            pieces.append(out[i : i + 2])
            i += 2
            continue
        if depth and out.startswith("&&", i):
            raise ValueError("Java character class intersection (&&) has no equivalent here")
        if out[i] == "[":
            depth += 1
        elif out[i] == "]" and depth:
            depth -= 1
        pieces.append(out[i])
        i += 1
    return "".join(pieces)


@cache
def compiled(pattern: str) -> regex.Pattern[str] | None:
    """The pattern, ready for a whole-value match; None (and recorded) if it cannot be translated."""
    try:
        return regex.compile(translate(pattern), regex.V0)
    except (ValueError, regex.error) as error:
        untranslatable[pattern] = str(error)
        return None
