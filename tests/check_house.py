"""The house's sizes, from the source: each top-level room's share of the non-test lines, and files over the limit.

    python tests/check_house.py            # a table, then the files over MAX_FILE_LINES
    python tests/check_house.py --json     # the same figures as JSON (tests/test_house.py reads it)

Rules (docs/ARCHITECTURE.md "Sizes, and why deploy/ was cut this way"): no file over MAX_FILE_LINES
lines; no room above MAX_ROOM_SHARE of the lines. Exit code 1 when either is broken.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {"tests", ".venv", "data", "configs", "docs", "shared", "runs", "build"}   # not the package's code
MAX_FILE_LINES = 400
MAX_ROOM_SHARE = 0.25


def code_files(root: Path = ROOT) -> dict[Path, int]:
    """Every .py file of the rooms (relative path) -> its line count."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP or any(part.startswith(".") for part in rel.parts):
            continue
        with path.open("rb") as f:
            out[rel] = sum(1 for _ in f)
    return out


def room_of(rel: Path) -> str:
    """The top-level room: its folder, or the module's name for a file at the root (errors.py)."""
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def house(root: Path = ROOT) -> dict:
    files = code_files(root)
    total = sum(files.values())
    rooms: dict[str, dict[str, float]] = {}
    for rel, lines in files.items():
        r = rooms.setdefault(room_of(rel), {"lines": 0, "files": 0})
        r["lines"] += lines
        r["files"] += 1
    for r in rooms.values():
        r["share"] = r["lines"] / total if total else 0.0
    return {"total_lines": total, "rooms": dict(sorted(rooms.items(), key=lambda kv: -kv[1]["lines"])),
            "over_file_limit": {str(rel): n for rel, n in files.items() if n > MAX_FILE_LINES},
            "over_room_share": sorted(name for name, r in rooms.items() if r["share"] > MAX_ROOM_SHARE),
            "max_file_lines": MAX_FILE_LINES, "max_room_share": MAX_ROOM_SHARE}


def main(argv: list[str]) -> int:
    found = house()
    if "--json" in argv:
        print(json.dumps(found, indent=1))
    else:
        print(f"{'room':<14}{'lines':>7}{'files':>7}{'share':>8}")
        for name, r in found["rooms"].items():
            flag = "  > {:.0%}".format(MAX_ROOM_SHARE) if name in found["over_room_share"] else ""
            print(f"{name:<14}{r['lines']:>7}{r['files']:>7}{r['share']:>8.1%}{flag}")
        print(f"{'total':<14}{found['total_lines']:>7}")
        for rel, n in found["over_file_limit"].items():
            print(f"over {MAX_FILE_LINES} lines: {rel} ({n})")
    return 1 if found["over_file_limit"] or found["over_room_share"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
