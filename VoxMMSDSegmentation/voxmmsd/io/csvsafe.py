"""CSV cells that a spreadsheet will not run: the defence against CSV (formula) injection.

Case ids come from folder and file names, warnings and errors quote them; a cell starting with ``=``, ``+``,
``-``, ``@`` (or a tab / line break) is a formula to Excel, LibreOffice and Google Sheets, so a folder named
``=HYPERLINK(...)`` or ``@SUM(1+1)`` would run when a summary is opened. :func:`cell` puts a ``'`` in front
(OWASP's rule): the spreadsheet shows the text as it is.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(text: Any) -> str:
    """``text`` as a CSV cell that cannot start a formula."""
    value = str(text)
    return "'" + value if value.startswith(FORMULA_STARTS) else value
