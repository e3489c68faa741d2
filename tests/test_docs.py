"""The published import schema is the one the code generates."""

import json
from pathlib import Path

from interfaces.cli.main import import_schema

DOCS = Path(__file__).parent.parent / "docs"


def test_published_import_schema_matches_the_models():
    published = json.loads((DOCS / "import-line.schema.json").read_text(encoding="utf-8"))
    assert published == import_schema(), "run `make schema` to regenerate docs/import-line.schema.json"


def test_every_step_type_is_documented():
    text = (DOCS / "import-format.md").read_text(encoding="utf-8")
    for step in import_schema()["discriminator"]["mapping"]:
        assert f"`{step}`" in text, step
