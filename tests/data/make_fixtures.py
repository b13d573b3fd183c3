"""Regenerate the small PDFs shipped with the tests (run: python tests/data/make_fixtures.py).

The texts are written for these tests and released under CC0 1.0 (see README.md beside this file). Each
page carries facts that appear nowhere else, so a test can check that a search lands on the right page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).parent

FILLER = (
    "The council publishes this almanac every spring so that residents, sailors and visitors share the same "
    "account of the town. Each section is reviewed by the harbour office and by volunteers of the historical "
    "society, who compare it with the ledgers kept in the town hall. Corrections are welcome at the library desk. "
)

HARBOUR_ALMANAC = [
    "Quillhaven Harbour Almanac\n\nQuillhaven is a fishing town on a sheltered bay. Its harbour has two basins, "
    "an outer one for visiting yachts and an inner one for the fishing fleet. " + FILLER * 3,
    "The lighthouse\n\nThe Quillhaven lighthouse was lit for the first time on 14 March 1887 by keeper Odalys "
    "Brennick, who kept it for thirty-one years. Its lamp burned colza oil until 1921, when it was converted "
    "to acetylene gas. " + FILLER * 3,
    "Tides and moorings\n\nThe harbour's tide gauge records a maximum spring tide of 7.3 metres. Moorings in the "
    "inner basin dry out at low water, so keel boats must use the outer basin. " + FILLER * 3,
]

ORCHARD_COOPERATIVE = [
    "Velmora Orchard Cooperative - Annual Report\n\nThe cooperative was founded by eleven families who pooled "
    "their land, their presses and their cold store. This report covers the season's harvest and sales. " + FILLER * 2,
    "Varieties and sales\n\nThe Velmora orchard cooperative grows 42 varieties of pear. Its best seller is the "
    "Amberglow pear, a russeted late variety that keeps until March in the cold store. Cider apples are pressed "
    "in October and sold to two local cideries. " + FILLER * 2,
]

# Long enough pages that chunks fill up and some run across a page break.
MANUAL_PAGES = [
    f"Pump station maintenance, section {n}\n\n"
    + " ".join(
        f"Inspection step {n}.{i}: check the bearing temperature of pump unit P-{100 + n} and record it in the "
        f"log sheet; a reading above {60 + n} degrees Celsius means the unit must be stopped and the grease "
        "replaced before it is started again."
        for i in range(1, 13)
    )
    for n in range(1, 6)
]


def write_pdf(path: Path, pages: list[str], title: str) -> None:
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_author("rag test fixtures (CC0)")
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        heading, _, body = text.partition("\n\n")
        pdf.set_font("Helvetica", style="B", size=14)
        pdf.multi_cell(0, 8, heading)
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, body)
    pdf.output(str(path))


def write_image_only_pdf(path: Path) -> None:
    """A PDF whose page has only drawings, like a scan: there is no text to extract."""
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_fill_color(40, 40, 40)
    for row in range(20):
        pdf.rect(20, 20 + row * 12, 170, 6, style="F")
    pdf.output(str(path))


if __name__ == "__main__":
    write_pdf(HERE / "harbour-almanac.pdf", HARBOUR_ALMANAC, "Quillhaven Harbour Almanac")
    write_pdf(HERE / "orchard-cooperative.pdf", ORCHARD_COOPERATIVE, "Velmora Orchard Cooperative")
    write_pdf(HERE / "pump-maintenance.pdf", MANUAL_PAGES, "Pump station maintenance")
    write_image_only_pdf(HERE / "scanned-no-text.pdf")
