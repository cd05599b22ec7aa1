"""The house's sizes (tests/check_house.py, shipped): no file over 400 lines and no room above 25% of the code."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "check_house.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_house", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_file_is_over_400_lines_and_no_room_is_over_a_quarter():
    done = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, timeout=120)
    found = json.loads(done.stdout)
    shares = ", ".join(f"{name} {r['share']:.1%}" for name, r in found["rooms"].items())
    print(f"room shares of {found['total_lines']} non-test lines: {shares}; over 25%: {found['over_room_share']}")
    assert found["rooms"]["deploy"]["lines"] > 0 and abs(sum(r["share"] for r in found["rooms"].values()) - 1) < 1e-9
    assert found["over_file_limit"] == {}, f"split these by concern: {found['over_file_limit']}"
    assert found["over_room_share"] == [], f"split these rooms by concern: {found['over_room_share']}"
    assert done.returncode == 0


def test_the_checker_counts_rooms_and_finds_a_long_file(tmp_path):
    check = _module()
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "long.py").write_text("x = 1\n" * 401)
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "a.py").write_text("y = 2\n" * 99)
    (tmp_path / "errors.py").write_text("z = 3\n" * 100)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("t = 0\n" * 1000)        # tests are not counted
    found = check.house(tmp_path)
    assert found["total_lines"] == 600
    assert {k: v["lines"] for k, v in found["rooms"].items()} == {"big": 401, "errors": 100, "small": 99}
    assert found["over_file_limit"] == {"big/long.py": 401}
    assert found["over_room_share"] == ["big"]                              # 401 / 600 > 25%
