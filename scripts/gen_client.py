"""Regenerate the TypeScript client's types from the API's OpenAPI document.

``python -m scripts.gen_client`` writes ``clients/typescript/openapi.json`` (the document of
``backend.main:app``, as the app serves it at ``/openapi.json``) and runs openapi-typescript on it
into ``clients/typescript/src/schema.ts``. Both files are committed, so an app developer needs no
Python; ``tests/test_ts_client.py`` fails when they are stale. Needs ``npm ci`` in
``clients/typescript`` first (``LAHSTATS_INSTALL_TEST_TOOLS=1 bash scripts/install.sh`` does it)."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from backend.main import create_app
from config import Settings

CLIENT_DIR = Path(__file__).resolve().parents[1] / "clients" / "typescript"
SCHEMA_JSON = "openapi.json"
SCHEMA_TS = "src/schema.ts"
GENERATOR = CLIENT_DIR / "node_modules" / ".bin" / "openapi-typescript"
# every schema also as a named type at the root (`SessionStatusPublic`, not only
# `components["schemas"]["SessionStatusPublic"]`), named as in the Python schemas
GENERATOR_FLAGS = ["--root-types", "--root-types-no-schema-prefix"]


def openapi_document() -> str:
    """The app's OpenAPI document as stable text (sorted keys, two-space indent, final newline).

    The document does not depend on the settings, so the defaults serve."""
    document = create_app(Settings()).openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(out_dir: Path) -> None:
    """Write ``openapi.json`` and the generated ``src/schema.ts`` under ``out_dir``."""
    if not GENERATOR.exists():
        raise SystemExit(f"{GENERATOR} is missing: run `npm ci` in {CLIENT_DIR}")
    schema_json, schema_ts = out_dir / SCHEMA_JSON, out_dir / SCHEMA_TS
    schema_ts.parent.mkdir(parents=True, exist_ok=True)
    schema_json.write_text(openapi_document(), encoding="utf-8")
    command = [str(GENERATOR), str(schema_json), "--output", str(schema_ts), *GENERATOR_FLAGS]
    subprocess.run(command, check=True, capture_output=True, cwd=CLIENT_DIR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CLIENT_DIR, help="default: the client itself")
    out_dir = parser.parse_args().out
    generate(out_dir)
    for name in (SCHEMA_JSON, SCHEMA_TS):
        print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    main()
