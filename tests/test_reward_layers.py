"""reward/ is the light rubric data layer: every module imports without torch or transformers."""
import pkgutil
import subprocess
import sys
from pathlib import Path

import promedical.reward


def test_rubric_data_layer_imports_without_torch():
    names = [f"promedical.reward.{m.name}" for m in pkgutil.iter_modules([str(Path(promedical.reward.__file__).parent)])]
    assert {"promedical.reward.pairs", "promedical.reward.rubric_io", "promedical.reward.aggregate"} <= set(names)
    code = ("import sys, importlib\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'deepspeed', 'vllm') if m in sys.modules)\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"reward/ pulled in {out.stdout.strip()}"
