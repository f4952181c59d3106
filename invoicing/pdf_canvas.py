"""Invoice PDFs drawn straight onto a ReportLab canvas: the document of
templates/invoicing/invoice_pdf.html + static/invoicing/documents.css, from the very same context
(`invoicing.pdf.invoice_document_context`), at roughly ten times WeasyPrint's speed.

Why a second renderer (issue 20, docs/decisions.md): WeasyPrint spends ~100–150 ms of CPU laying out a
20-line, two-page invoice (style cascade, table and line layout), five to seven documents per second per
process, where a billing run needs 20. An invoice is a fixed layout: the only decisions are where a line
wraps and where a page breaks, and both are made here with the bundled font's own advance widths (it has
no kerning or ligature tables, so WeasyPrint measures text exactly the same way).

The canvas draws only what the bundled font can print. Any character outside it (a Japanese legal name,
an emoji in an address) raises `NotDrawable` and the invoice is rendered by WeasyPrint, whose font
fallback finds Noto CJK; credit notes are always WeasyPrint's (one at a time, never in bulk).

Layout works in points from the top of the page; `draw` flips to PDF coordinates. Page breaks follow the
stylesheet: a line row never splits, the table heading repeats on every page, the totals block and the
payment box stay whole, and every page carries the footer ("Page 2 of 3") and, for drafts and voided
invoices, the watermark."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

MM = 72 / 25.4
PAGE_W, PAGE_H = 210 * MM, 297 * MM  # A4
TOP, RIGHT, BOTTOM, LEFT = 18 * MM, 16 * MM, 22 * MM, 16 * MM
WIDTH = PAGE_W - LEFT - RIGHT
CONTENT_BOTTOM = PAGE_H - BOTTOM
LINE_HEIGHT = 1.35
# The bundled face's vertical metrics (hhea 1901 / 483 per 2048 units): with CSS's half-leading, a
# line's baseline sits this many font sizes below the top of its line box.
ASCENT, DESCENT = 1901 / 2048, 483 / 2048
BASELINE = (LINE_HEIGHT - ASCENT - DESCENT) / 2 + ASCENT
OBLIQUE = 0.21  # tan 12°: the stylesheet's italic tax note, slanted (the bundled font has no italic)

FONT_FILES = Path(settings.BASE_DIR) / "static" / "invoicing" / "fonts"
REGULAR, BOLD = "LedgerlineDocSans", "LedgerlineDocSans-Bold"

INK, MUTED, SOFT, FOOT = "#1d232b", "#667085", "#475467", "#777777"
RULE, HAIRLINE, GROUP_RULE = "#98a2b3", "#eaecf0", "#d0d5dd"
SUMMARY_BG, PANEL_BG, ALERT = "#f2f4f7", "#f9fafb", "#b42318"

# table.lines columns (52 / 15 / 15 / 18 %) and cell padding
COLUMNS = (0.52, 0.15, 0.15, 0.18)
CELL_X, CELL_Y, GROUP_TOP, HEAD_Y = 1.5 * MM, 1.6 * MM, 2.4 * MM, 1.5 * MM


class NotDrawable(Exception):
    """The document holds text the bundled font cannot print; WeasyPrint renders it instead."""


@dataclass(frozen=True)
class Style:
    size: float = 8.8
    bold: bool = False
    color: str = INK
    spacing: float = 0.0  # CSS letter-spacing, after every character
    upper: bool = False
    oblique: bool = False

    @property
    def font(self) -> str:
        return BOLD if self.bold else REGULAR

    @property
    def leading(self) -> float:
        return self.size * LINE_HEIGHT


BODY = Style()
STRONG = Style(bold=True)
MUTED_BODY = Style(color=MUTED)


@lru_cache(maxsize=1)
def _fonts() -> frozenset[int]:
    """Register the bundled faces with ReportLab once per process; the code points both can print."""
    from reportlab.pdfbase import pdfmetrics  # noqa: PLC0415 — loaded on first use, like WeasyPrint
    from reportlab.pdfbase.ttfonts import TTFont  # noqa: PLC0415

    covered = None
    for name in (REGULAR, BOLD):
        font = TTFont(name, str(FONT_FILES / f"{name}.ttf"))
        pdfmetrics.registerFont(font)
        points = frozenset(font.face.charToGlyph)
        covered = points if covered is None else covered & points
    return covered


def _width(text: str, style: Style) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth  # noqa: PLC0415

    return stringWidth(text, style.font, style.size) + style.spacing * len(text)


def check(text: str) -> str:
    """`text` itself, once every character in it is one the bundled font can print."""
    covered = _fonts()
    for char in text:
        if ord(char) not in covered and char != "\n":
            raise NotDrawable(char)
    return text


_SPACES = re.compile(r"[ \t\r\f\v]+")


def wrap(text: str, style: Style, width: float) -> list[str]:
    """`text` broken into lines no wider than `width`, as CSS `white-space: pre-line` does: newlines
    kept, runs of spaces collapsed, breaks at spaces; a word wider than the column breaks where it must."""
    text = check(text.upper() if style.upper else text)
    if not text.strip():
        return []  # an empty element has no line box
    lines: list[str] = []
    space = _width(" ", style)
    for paragraph in text.replace("\r\n", "\n").split("\n"):
        words = _SPACES.sub(" ", paragraph).strip().split(" ")
        line, line_width = "", 0.0
        for word in words:
            word_width = _width(word, style)
            if line and line_width + space + word_width <= width:
                line, line_width = f"{line} {word}", line_width + space + word_width
                continue
            if line:
                lines.append(line)
            while word_width > width and len(word) > 1:  # an unbreakable run: cut it at the column edge
                cut = len(word) - 1
                while cut > 1 and _width(word[:cut], style) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
                word_width = _width(word, style)
            line, line_width = word, word_width
        lines.append(line)
    return lines


# --- page model --------------------------------------------------------------------------------
# Ops are plain tuples so a test can read where everything went:
#   ("text", x, baseline, text, style, align)   align: "left" | "right" | "center"
#   ("rect", x, top, width, height, fill)
#   ("line", x1, y1, x2, y2, width, color)


class Pages:
    def __init__(self):
        self.pages: list[list[tuple]] = [[]]
        self.y = TOP

    @property
    def ops(self) -> list[tuple]:
        return self.pages[-1]

    def room(self) -> float:
        return CONTENT_BOTTOM - self.y

    def new_page(self) -> None:
        self.pages.append([])
        self.y = TOP

    def text(self, x: float, top: float, text: str, style: Style, align: str = "left") -> None:
        self.ops.append(("text", x, top + style.size * BASELINE, text, style, align))

    def block(self, x: float, top: float, lines: list[str], style: Style, align: str = "left") -> float:
        """Draw wrapped lines from `top`; returns their height."""
        for i, line in enumerate(lines):
            self.text(x, top + i * style.leading, line, style, align)
        return len(lines) * style.leading


@dataclass
class Paragraph:
    """Lines in one style, measured before they are placed."""
    lines: list[str]
    style: Style
    space_before: float = 0.0

    @classmethod
    def of(cls, text: str, style: Style, width: float, space_before: float = 0.0) -> Paragraph:
        return cls(wrap(text, style, width), style, space_before)

    @property
    def height(self) -> float:
        return self.space_before + len(self.lines) * self.style.leading


def _stack(pages: Pages, x: float, top: float, paragraphs: list[Paragraph], align: str = "left") -> float:
    y = top
    for p in paragraphs:
        y += p.space_before
        y += pages.block(x, y, p.lines, p.style, align)
    return y - top


def _height(paragraphs: list[Paragraph]) -> float:
    return sum(p.height for p in paragraphs)


# --- sections ----------------------------------------------------------------------------------

def _header(pages: Pages, c: dict) -> None:
    half = WIDTH * 0.48
    left = [Paragraph.of(c["seller"].get("name") or "", Style(size=13, bold=True), half)]
    title = Style(size=20, bold=True, spacing=0.5)
    rows = []
    if c["number"]:
        rows.append(("Invoice number", c["number"], STRONG))
    rows.append(("Issue date", c["issue_date"], BODY))
    rows.append(("Due date", c["due_date"] or "on finalization", BODY))
    if c["period"]:
        rows.append(("Service period", c["period"], BODY))
    rows.append(("Currency", c["currency"], BODY))
    for _, value, _ in rows:
        check(value)  # meta values are short and never wrap

    top = pages.y
    left_height = _stack(pages, LEFT, top, left)
    right_edge = LEFT + WIDTH
    pages.block(right_edge, top, wrap(c["title"], title, WIDTH), title, "right")
    y = top + title.leading + 2 * MM
    pad = 0.4 * MM
    value_column = max(_width(value, style) for _, value, style in rows) + 5 * MM
    for label, value, style in rows:
        pages.text(right_edge - value_column, y + pad, label, MUTED_BODY, "right")  # document order: label first
        pages.text(right_edge, y + pad, value, style, "right")
        y += BODY.leading + 2 * pad
    if c["is_draft"]:
        note = Style(color=ALERT, bold=True)
        y += pages.block(right_edge, y, wrap("Draft \u2013 preview only, not a valid invoice", note, WIDTH), note,
                         "right")
    bottom = max(top + left_height, y) + 6 * MM
    pages.ops.append(("line", LEFT, bottom + 0.75, right_edge, bottom + 0.75, 1.5, INK))
    pages.y = bottom + 1.5


def _party(label: str, name: str, rows: list[tuple[str, Style]], width: float) -> list[Paragraph]:
    label_style = Style(size=7.2, color=MUTED, spacing=0.6, upper=True)
    paragraphs = [Paragraph.of(label, label_style, width), Paragraph.of(name, Style(size=10, bold=True), width,
                                                                         space_before=1 * MM)]
    return paragraphs + [Paragraph.of(text, style, width) for text, style in rows if text]


def _parties(pages: Pages, c: dict) -> None:
    seller, customer = c["seller"], c["customer"]
    width = WIDTH * 0.48
    small_muted = Style(size=7.6, color=MUTED)
    region = customer.get("region") or ""
    country = customer.get("country") or ""
    seller_rows = [(seller.get("address") or "", BODY),
                   (f"Tax ID: {seller['tax_id']}" if seller.get("tax_id") else "", BODY),
                   (seller.get("email") or "", MUTED_BODY)]
    customer_rows = [(customer.get("address") or "", BODY),
                     (", ".join(p for p in (region, country) if p), BODY),
                     (f"Tax ID: {customer['tax_id']}" if customer.get("tax_id") else "", BODY),
                     (customer.get("email") or "", MUTED_BODY),
                     (f"Customer ID: {customer['external_id']}" if customer.get("external_id") else "", small_muted)]
    # The label's 1 mm bottom margin is folded into the name's space_before.
    left = _party("From", seller.get("name") or "", seller_rows, width)
    right = _party("Bill to", customer.get("name") or "", customer_rows, width)
    top = pages.y + 7 * MM
    height = max(_stack(pages, LEFT, top, left), _stack(pages, LEFT + WIDTH - width, top, right))
    pages.y = top + height + 5 * MM


def _summary(pages: Pages, c: dict) -> None:
    pad_y, pad_x = 3 * MM, 4 * MM
    inner = WIDTH - 2 * pad_x
    due_by = f"Amount due by {c['due_date']}" if c["due_date"] else "Amount due"
    left = [Paragraph.of(due_by, MUTED_BODY, inner * 0.6), Paragraph.of(c["amount_due"], Style(size=14, bold=True),
                                                                        inner * 0.6)]
    right = [Paragraph.of("Payment method", MUTED_BODY, inner * 0.4), Paragraph.of(c["payment_method"], BODY,
                                                                                   inner * 0.4)]
    height = max(_height(left), _height(right)) + 2 * pad_y
    top = pages.y
    pages.ops.append(("rect", LEFT, top, WIDTH, height, SUMMARY_BG))
    _stack(pages, LEFT + pad_x, top + pad_y, left)
    _stack(pages, LEFT + WIDTH - pad_x, top + pad_y, right, align="right")
    pages.y = top + height + 6 * MM


def _column_edges() -> list[tuple[float, float]]:
    edges, x = [], LEFT
    for share in COLUMNS:
        edges.append((x, x + share * WIDTH))
        x += share * WIDTH
    return edges


HEAD = Style(size=7.4, bold=True, color=MUTED, spacing=0.5, upper=True)
TIERS = Style(size=7.8, color=SOFT)
PERIOD = Style(size=7.6, color=MUTED)
HEAD_HEIGHT = 2 * HEAD_Y + HEAD.leading + 0.75


def _table_head(pages: Pages) -> None:
    top = pages.y
    for (x0, x1), (title, align) in zip(_column_edges(), (("Description", "left"), ("Quantity", "right"),
                                                          ("Unit price", "right"), ("Amount", "right"))):
        pages.text(x0 + CELL_X if align == "left" else x1 - CELL_X, top + HEAD_Y, title.upper(), HEAD, align)
    rule = top + HEAD_HEIGHT - 0.375
    pages.ops.append(("line", LEFT, rule, LEFT + WIDTH, rule, 0.75, RULE))
    pages.y = top + HEAD_HEIGHT


@dataclass
class Row:
    description: list[Paragraph]  # the first column: description, tier wording, period
    numbers: tuple[str, str, str]  # quantity, unit price, amount: one line each
    group: bool = False

    @property
    def height(self) -> float:
        top = GROUP_TOP if self.group else CELL_Y
        # The numeric cells hold one line each, so a row is never shorter than one line.
        return top + max(_height(self.description), BODY.leading) + CELL_Y + 0.75


def _rows(c: dict) -> list[Row]:
    x0, x1 = _column_edges()[0]
    inner = x1 - x0 - 2 * CELL_X
    rows: list[Row] = []
    for group in c["groups"]:
        rows.append(Row([Paragraph.of(group.heading, STRONG, WIDTH - 2 * CELL_X)], ("", "", ""), group=True))
        for line in group.lines:
            cell = [Paragraph.of(line["description"], BODY, inner)]
            if line["tiers"]:
                cell.append(Paragraph.of(line["tiers"], TIERS, inner, space_before=0.6 * MM))
            if line["period"]:
                cell.append(Paragraph.of(line["period"], PERIOD, inner))
            # Numbers never wrap (white-space: nowrap).
            numbers = (check(line["quantity"]), check(line["unit_amount"]), check(line["amount"]))
            rows.append(Row(cell, numbers))
    if not rows:
        rows.append(Row([Paragraph.of("No charges.", MUTED_BODY, WIDTH - 2 * CELL_X)], ("", "", "")))
    return rows


def _lines_table(pages: Pages, c: dict) -> None:
    rows = _rows(c)
    edges = _column_edges()
    if pages.room() < HEAD_HEIGHT + rows[0].height:
        pages.new_page()
    _table_head(pages)
    for i, row in enumerate(rows):
        # A row never splits; a group heading moves with its first line.
        need = row.height + (rows[i + 1].height if row.group and i + 1 < len(rows) else 0)
        if need > pages.room() and pages.y > TOP + HEAD_HEIGHT:
            pages.new_page()
            _table_head(pages)
        top = pages.y
        if row.group:
            pages.ops.append(("rect", LEFT, top, WIDTH, row.height, PANEL_BG))
        _stack(pages, LEFT + CELL_X, top + (GROUP_TOP if row.group else CELL_Y), row.description)
        for (_, x1), number in zip(edges[1:], row.numbers):
            if number:
                pages.text(x1 - CELL_X, top + CELL_Y, number, BODY, "right")
        rule = top + row.height - 0.375
        pages.ops.append(("line", LEFT, rule, LEFT + WIDTH, rule, 0.75, GROUP_RULE if row.group else HAIRLINE))
        pages.y = top + row.height


TOTALS_PAD = 1.2 * MM
DETAIL = Style(size=7.6, color=MUTED)


@dataclass
class TotalRow:
    label: Paragraph
    amount: str
    style: Style
    pad_top: float = TOTALS_PAD
    rule: tuple[float, str] | None = None  # a border above the row: (width, colour)
    detail: str = ""  # "(6.25% of $3,108.23)", on the label's last line when it fits there
    detail_below: Paragraph | None = None

    @property
    def height(self) -> float:
        label = self.label.height + (self.detail_below.height if self.detail_below else 0)
        return (self.rule[0] if self.rule else 0) + self.pad_top + max(label, self.style.leading) + TOTALS_PAD


def _total_rows(c: dict, label_width: float) -> list[TotalRow]:
    rows = []
    for row in c["totals"]:
        style = STRONG if row.strong else BODY
        total = TotalRow(Paragraph.of(row.label, style, label_width), check(row.amount), style,
                         rule=(0.75, RULE) if row.strong else None)
        if row.detail:
            detail = check(f"({row.detail})")
            if total.label.lines and _width(f"{total.label.lines[-1]} ", style) + _width(detail, DETAIL) <= label_width:
                total.detail = detail
            else:
                total.detail_below = Paragraph.of(detail, DETAIL, label_width)
        rows.append(total)
    due = Style(size=11, bold=True)
    rows.append(TotalRow(Paragraph.of("Amount due", due, label_width), check(c["amount_due"]), due, pad_top=2 * MM,
                         rule=(1.5, INK)))
    return rows


def _totals(pages: Pages, c: dict) -> None:
    """`.totals`: 56 % wide at the right, label 68 % / amount 32 %, kept on one page."""
    width = WIDTH * 0.56
    x0 = LEFT + WIDTH - width
    rows = _total_rows(c, width * 0.68 - 2 * CELL_X)
    if 5 * MM + sum(row.height for row in rows) > pages.room():
        pages.new_page()
    y = pages.y + 5 * MM
    for row in rows:
        if row.rule:
            stroke, color = row.rule
            pages.ops.append(("line", x0, y + stroke / 2, x0 + width, y + stroke / 2, stroke, color))
        top = y + (row.rule[0] if row.rule else 0) + row.pad_top
        label_height = pages.block(x0 + CELL_X, top, row.label.lines, row.style)
        if row.detail:
            # The smaller detail runs on after the label, on the same baseline.
            last_top = top + label_height - row.style.leading
            shift = (row.style.size - DETAIL.size) * BASELINE
            x = x0 + CELL_X + _width(row.label.lines[-1] + " ", row.style)
            pages.text(x, last_top + shift, row.detail, DETAIL)
        if row.detail_below:
            pages.block(x0 + CELL_X, top + label_height, row.detail_below.lines, DETAIL)
        pages.text(x0 + width - CELL_X, top, row.amount, row.style, "right")
        y += row.height
    pages.y = y


def _tax_note(pages: Pages, c: dict) -> None:
    if not c.get("tax_note"):
        return
    style = Style(color=SOFT, oblique=True)
    lines = wrap(c["tax_note"], style, WIDTH)
    height = 2 * MM + len(lines) * style.leading
    if height > pages.room():
        pages.new_page()
    pages.y += 2 * MM
    pages.y += pages.block(LEFT + WIDTH, pages.y, lines, style, "right")


def _explanation(pages: Pages, c: dict) -> None:
    explanation = c.get("explanation")
    if not explanation:
        return
    heading = Paragraph.of(f"What changed since the previous invoice ({explanation['previous_total']}): "
                           f"{explanation['delta']}", Style(size=9, bold=True), WIDTH)
    # h2 keeps 1.2 mm below it, and paragraphs the browser's 1em margins (collapsed with it).
    paragraphs = [Paragraph.of(f"{d['text']}: {d['amount']}", BODY, WIDTH, space_before=BODY.size)
                  for d in explanation["drivers"]]
    if 6 * MM + heading.height + (paragraphs[0].height if paragraphs else 0) > pages.room():
        pages.new_page()
    else:
        pages.y += 6 * MM
    pages.y += _stack(pages, LEFT, pages.y, [heading])
    for p in paragraphs:
        if p.height > pages.room():
            pages.new_page()
        pages.y += _stack(pages, LEFT, pages.y, [p])


def _payment(pages: Pages, c: dict) -> None:
    pad_y, pad_x, border = 3 * MM, 4 * MM, 2.25
    inner = WIDTH - border - 2 * pad_x
    paragraphs = [Paragraph.of("Payment", Style(size=9, bold=True), inner)]
    for i, text in enumerate(c["payment"]):
        paragraphs.append(Paragraph.of(text, BODY, inner, space_before=1.2 * MM if i == 0 else 0.6 * MM))
    height = 2 * pad_y + _height(paragraphs) + 0.6 * MM
    if 8 * MM + height > pages.room():
        pages.new_page()
    else:
        pages.y += 8 * MM
    top = pages.y
    pages.ops.append(("rect", LEFT, top, WIDTH, height, PANEL_BG))
    pages.ops.append(("line", LEFT + border / 2, top, LEFT + border / 2, top + height, border, INK))
    _stack(pages, LEFT + border + pad_x, top + pad_y, paragraphs)
    pages.y = top + height


def layout_invoice(context: dict) -> list[list[tuple]]:
    """The invoice's pages as lists of drawing ops, without the footer and watermark (`draw` adds
    both once the page count is known). Raises NotDrawable for text outside the bundled font."""
    pages = Pages()
    for section in (_header, _parties, _summary, _lines_table, _totals, _tax_note, _explanation, _payment):
        section(pages, context)
    return pages.pages


# --- drawing -----------------------------------------------------------------------------------

def _draw_texts(canvas, texts: list[tuple]) -> None:
    """A page's texts as one text object, in document order, each placed by its own text matrix and
    written with Tj only: text extraction (pypdf, pdftotext) then reads a label and its value on one
    line ("Amount due $3,214.65"), as it does WeasyPrint's output."""
    from reportlab.lib.colors import HexColor  # noqa: PLC0415

    obj = canvas.beginText()
    font = color = None
    spacing = 0.0
    for _, x, baseline, text, style, align in texts:
        if align != "left":
            width = _width(text, style) - style.spacing  # the trailing letter-space is not ink
            x -= width if align == "right" else width / 2
        if (style.font, style.size) != font:
            obj.setFont(style.font, style.size)
            font = (style.font, style.size)
        if style.color != color:
            obj.setFillColor(HexColor(style.color))
            color = style.color
        if style.spacing != spacing:
            obj.setCharSpace(style.spacing)
            spacing = style.spacing
        obj.setTextTransform(1, 0, OBLIQUE if style.oblique else 0, 1, x, PAGE_H - baseline)
        obj.textOut(text)
    canvas.drawText(obj)


def _draw_ops(canvas, ops: list[tuple]) -> None:
    """Rules and backgrounds first, then the text over them."""
    from reportlab.lib.colors import HexColor  # noqa: PLC0415

    for op in ops:
        kind = op[0]
        if kind == "rect":
            _, x, top, width, height, fill = op
            canvas.setFillColor(HexColor(fill))
            canvas.rect(x, PAGE_H - top - height, width, height, stroke=0, fill=1)
        elif kind == "line":
            _, x1, y1, x2, y2, width, color = op
            canvas.setStrokeColor(HexColor(color))
            canvas.setLineWidth(width)
            canvas.line(x1, PAGE_H - y1, x2, PAGE_H - y2)
    _draw_texts(canvas, [op for op in ops if op[0] == "text"])


def _watermark(canvas, text: str) -> None:
    """`.watermark`: 110 pt bold, letter-spaced, rotated 30° anticlockwise about the centre of a
    full-width box 95 mm below the top margin, in translucent red behind everything else."""
    from reportlab.lib.colors import Color  # noqa: PLC0415

    style = Style(size=110, bold=True, spacing=8)
    canvas.saveState()
    canvas.translate(LEFT + WIDTH / 2, PAGE_H - (TOP + 95 * MM + style.leading / 2))
    canvas.rotate(30)
    canvas.setFillColor(Color(200 / 255, 40 / 255, 40 / 255, alpha=0.13))
    obj = canvas.beginText()
    obj.setFont(style.font, style.size)
    obj.setCharSpace(style.spacing)
    obj.setTextOrigin(-(_width(text, style) - style.spacing) / 2, style.size * BASELINE - style.leading / 2)
    obj.textOut(text)
    obj.setCharSpace(0)
    canvas.drawText(obj)
    canvas.restoreState()


FOOTER = Style(size=7.5, color=FOOT)
# @bottom-left / @bottom-right: one line centred in the 22 mm bottom margin
FOOTER_TOP = PAGE_H - BOTTOM / 2 - FOOTER.leading / 2


def draw(pages: list[list[tuple]], context: dict) -> bytes:
    from reportlab.pdfgen.canvas import Canvas  # noqa: PLC0415

    reference = (context["seller"].get("name") or "") + " \u00b7 " + (
        f"Invoice {context['number']}" if context["number"] else "Draft invoice (preview)")
    reference = wrap(reference, FOOTER, WIDTH * 0.7)[0]  # one line, as the margin box shows it
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(PAGE_W, PAGE_H), pageCompression=1)
    canvas.setTitle(f"Invoice {context['number']}" if context["number"] else "Draft invoice")
    canvas.setCreator("Ledgerline")
    total = len(pages)
    for number, ops in enumerate(pages, start=1):
        if context["watermark"]:
            _watermark(canvas, context["watermark"])
        footer = Pages()
        footer.text(LEFT, FOOTER_TOP, reference, FOOTER)
        footer.text(LEFT + WIDTH, FOOTER_TOP, f"Page {number} of {total}", FOOTER, "right")
        _draw_ops(canvas, ops + footer.ops)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def render_invoice_canvas(context: dict) -> bytes:
    """The invoice PDF from `invoice_document_context`. Raises NotDrawable (nothing drawn) when the
    bundled font cannot print some of its text."""
    return draw(layout_invoice(context), context)
