"""Build the message catalogues: extract the message ids (pybabel) from the pages and the
mails, fill sv and nb from application/locale/translations.tsv (English, Swedish, bokmål),
write the .po files and compile .mo.

    python -m interfaces.web.catalogues
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
LOCALE = ROOT / "application" / "locale"
# where message ids are: the pages (templates, labels), the reminder mails, the CLI's labels
SOURCES = (HERE, ROOT / "activities" / "notify.py", ROOT / "application" / "labels.py",
           ROOT / "interfaces" / "cli" / "labels.py")
# the domain's refusal templates (and the event store's, worded like the domain's): `N_` only,
# as `_` and `g` are ordinary names there
REFUSAL_SOURCES = (ROOT / "domain", ROOT / "application" / "store.py",
                   ROOT / "application" / "notice_store.py")


def table() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in (LOCALE / "translations.tsv").read_text("utf-8").splitlines():
        if line.strip():
            en, sv, nb = line.split("\t")
            rows[en] = (sv, nb)
    return rows


def extract() -> Catalog:
    catalog = _extract(SOURCES, ("N_", "_", "g"))
    for message in _extract(REFUSAL_SOURCES, ("N_",), "--no-default-keywords"):
        if message.id and message.id not in catalog:
            catalog.add(message.id)
    return catalog


def _extract(sources: tuple[Path, ...], keywords: tuple[str, ...], *options: str) -> Catalog:
    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / "messages.pot"
        subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                        str(HERE / "babel.cfg"), *(a for k in keywords for a in ("-k", k)),
                        *options, "--no-location", "-o", str(pot), *map(str, sources)],
                       check=True, capture_output=True, cwd=HERE)
        with pot.open("rb") as f:
            return read_po(f)


def build(into: Path = LOCALE, rows: dict[str, tuple[str, str]] | None = None) -> list[str]:
    """Write and compile the catalogues (into `into`/LANG/LC_MESSAGES); the message ids
    without a translation in `rows` (default: translations.tsv)."""
    source, rows = extract(), table() if rows is None else rows
    missing = []
    for lang, column in (("sv", 0), ("nb", 1), ("en", None)):
        catalog = Catalog(locale=lang, domain="messages", project="housing-chain")
        for message in source:
            if not message.id:
                continue
            text = message.id if column is None else rows.get(message.id, ("", ""))[column]
            if not text:
                missing.append(f"{lang}: {message.id}")
            catalog.add(message.id, text)
        out = into / lang / "LC_MESSAGES"
        out.mkdir(parents=True, exist_ok=True)
        with (out / "messages.po").open("wb") as f:
            write_po(f, catalog, omit_header=False, sort_output=True)
        with (out / "messages.mo").open("wb") as f:
            write_mo(f, catalog)
    return missing


if __name__ == "__main__":
    gaps = build()
    print("\n".join(gaps) or "all messages translated")
    sys.exit(1 if gaps else 0)
