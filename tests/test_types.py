"""The loop's seam, type-checked: mypy on rollout/, the role interfaces, the Ray groups' conformance and the fakes.

One mypy run (config: pyproject.toml [tool.mypy]) over
- rollout/ and actors/interfaces.py (the driver and the Protocols it is written against),
- tests/fixtures/types/concrete_groups.py (actors/groups.py's Ray groups passed where the Protocols are asked),
- the unit tests' fakes (test_rollout_loop_fakes.py, test_dynamic_sampling.py),
- tests/fixtures/types/fake_drops_a_method.py, a fake policy group without `restore`,
must report nothing but the dropped method. The checkout is reached through a `promedical` link, since
the package is the repository root (pyproject's package-dir).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["rollout", "actors/interfaces.py"]
TESTS = ["tests/fixtures/types/concrete_groups.py", "tests/test_rollout_loop_fakes.py",
         "tests/test_dynamic_sampling.py"]
BROKEN = "tests/fixtures/types/fake_drops_a_method.py"


def _mypy(tmp_path: Path) -> list[str]:
    pytest.importorskip("mypy", reason="mypy is installed by setup.sh (types stamp)")
    link = tmp_path / "promedical"
    link.symlink_to(ROOT, target_is_directory=True)
    args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(ROOT / ".cache" / "mypy"), "--no-error-summary", "--show-absolute-path",
            *[str(link / p) for p in CHECKED], *[str(ROOT / p) for p in [*TESTS, BROKEN]]]
    env = dict(os.environ, MYPYPATH=str(tmp_path))
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stderr                # 2: mypy itself failed
    return [line.replace(str(link), str(ROOT)) for line in done.stdout.splitlines() if line.strip()]


def test_the_seam_type_checks_and_a_fake_missing_a_method_does_not(tmp_path):
    lines = _mypy(tmp_path)
    broken = str(ROOT / BROKEN)
    elsewhere = [line for line in lines if not line.startswith(broken)]
    assert elsewhere == [], "\n".join(elsewhere)
    errors = [line for line in lines if re.search(r":\d+: error:", line)]
    assert len(errors) == 1 and '"PolicyWithoutRestore", variable has type "PolicyGroup"' in errors[0], lines
    assert any(line.rstrip().endswith("note:     restore") for line in lines), lines
