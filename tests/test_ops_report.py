"""`promedical report`: the five PNG plots and the markdown summary of a run directory."""
from __future__ import annotations

import struct

from promedical.cli.main import main
from promedical.storage.metrics_log import MetricsLog


def write_run(root, steps: int) -> None:
    (root / "config.yaml").write_text("preset: tiny\n")
    log = MetricsLog(root / "metrics.msgpack")
    for s in range(steps):
        log.append({"step": s, "policy_version": s + 1, "reward_mean": -0.5 + 0.25 * s, "s1_mean": 0.1 * s,
                    "s2_mean": 0.2, "s3_mean": 0.0, "veto_rate": 0.5 / (s + 1), "kl": 0.001 * s,
                    "response_length_mean": 20.0 + s, "response_length_max": 24.0, "tokens_per_s": 500.0,
                    "step_tokens_per_s": 200.0, "time_step": 2.0, "staleness_mean": 0.0})
    log.append({"event": "run_end", "step": steps - 1, "policy_version": steps})
    log.close()


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_writes_plots_and_summary(tmp_path, capsys):
    write_run(tmp_path, 4)
    assert main(["report", str(tmp_path)]) == 0
    out = tmp_path / "report"
    for stem in ("reward", "veto_rate", "kl", "lengths", "throughput"):
        width, height = png_size(out / f"{stem}.png")
        assert width >= 400 and height >= 300
    text = (out / "summary.md").read_text()
    assert "4 steps (step 1 to 4), policy version 4" in text
    assert "| reward mean | -0.500 | +0.250 | -0.500 | +0.250 |" in text     # first, last, min, max
    assert "| veto rate | 0.500 | 0.125 | 0.125 | 0.500 |" in text
    assert "![reward](reward.png)" in text
    assert str(out / "summary.md") in capsys.readouterr().out


def test_report_on_empty_run_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("preset: tiny\n")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no step events" in err
