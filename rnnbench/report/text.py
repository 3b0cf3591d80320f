"""Text that came from rows, made safe for where it goes: Markdown table cells (`_markdown`), LaTeX
that compiles with pdflatex and booktabs alone (`_latex`), matplotlib labels (`_plot_text`) and
pieces of file names (`_name_part`, `_digest`). Row contents are untrusted: control characters
become visible escapes everywhere (`_printable`)."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
import unicodedata


def _printable(text) -> str:
    """Text without control characters (each becomes a visible \\xNN)."""
    return "".join(
        c
        if c.isprintable() or c == " "
        else f"\\x{ord(c):02x}"
        if ord(c) < 256
        else f"\\u{ord(c):04x}"
        for c in str(text)
    )


def _markdown(text) -> str:
    """Text as it reads in a Markdown table cell: `|` and the characters that would start emphasis,
    code, math, links, HTML or entities escaped (an underscore inside a word needs none)."""
    text = re.sub(r"([\\`*\[\]<>|~&$])", r"\\\1", _printable(text))
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}  # (OT1 fonts print | < > as other glyphs)
LATEX_SYMBOLS = {
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "–": "--",
    "—": "---",
    "²": r"\textsuperscript{2}",
    "×": r"$\times$",
    "…": r"\ldots{}",
    "→": r"$\rightarrow$",
    "µ": r"$\mu$",
    "μ": r"$\mu$",
}


def _latex(text) -> str:
    """Text as LaTeX that compiles with pdflatex and booktabs alone: its special characters
    escaped, and ASCII only (accents dropped; other characters written as [U+XXXX])."""
    text = re.sub(r"[\\&%$#_{}~^|<>]", lambda m: LATEX_SPECIAL[m.group()], _printable(text))
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
        elif char in LATEX_SYMBOLS:
            out.append(LATEX_SYMBOLS[char])
        else:
            folded = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            out.append(_latex(folded) if folded.isascii() and folded else f"[U+{ord(char):04X}]")
    return "".join(out)


def _plot_text(text, limit: int = 48, width: int | None = None) -> str:
    """Text for matplotlib: `$` taken literally (not as mathtext), no control characters, short;
    given a `width`, on two lines at most."""
    text = _printable(text)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    if width is not None:
        text = "\n".join(textwrap.wrap(text, width, max_lines=2, placeholder="…"))
    return text.replace("$", r"\$")


def _name_part(text, limit: int = 32) -> str:
    """A piece of a file name made from row contents: only [A-Za-z0-9._=-], no leading dot or
    dash, at most `limit` characters; where that changed the text, a short hash of it keeps
    different texts apart (`../x` -> `x_1b2c3d4e`)."""
    text = str(text)
    clean = re.sub(r"[^A-Za-z0-9._=-]+", "_", text)
    if clean == text and not text.startswith((".", "-")) and len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    clean = re.sub(r"^[._-]+", "", clean[: limit - 9]).rstrip("_")
    return f"{clean}_{digest}" if clean else digest


def _digest(keys) -> str:
    return hashlib.sha256(
        json.dumps([str(k) for k in keys]).encode("utf-8", "surrogatepass")
    ).hexdigest()[:8]
