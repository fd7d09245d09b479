"""Free text at the edges: what may be stored, and what a spreadsheet may be handed.

`clean_text` runs on the way in (every free-text field of a request body, through
`fleet.fields.Text`) and again on the way out of every export, because rows stored before the
rule (or written by SQL) may still hold control characters: XLSX (XML 1.0) cannot carry them
at all, and in CSV they garble rows. `neutralise_formula` is the OWASP CSV-injection defence,
applied to every text cell of every CSV/XLSX export by `fleet.tabular`.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls, UTF-16 surrogates (a lone one cannot
# be encoded to UTF-8 at all) and the two non-characters U+FFFE/U+FFFF.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_CR = re.compile("\r\n?")

# A spreadsheet treats a cell that starts with one of these as a formula (or, for tab and CR,
# may shift it into one): =HYPERLINK(...), +cmd|..., -2+3, @SUM(...).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def clean_text(value: str) -> str:
    """The text without control characters; CR and CRLF become LF, tab and LF stay."""
    return _CONTROL.sub("", _CR.sub("\n", value))


def neutralise_formula(value: str) -> str:
    """Text a spreadsheet shows as text: a leading formula trigger gets a `'` in front."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value
