"""The attention screen's report (from hand-written stats) and its bad flags."""

import json
import os

import pytest

from benchmarks import attention_screen


def _stats(run_dir, rows):
    os.makedirs(os.path.join(run_dir, "exp-000"))
    with open(os.path.join(run_dir, "exp-000", "stats.jsonl"), "w") as f:
        for kimg, ent, loc in rows:
            r = {"Progress/kimg": kimg, "Attention/Gs/change": 0.1, "G/loss": 1.0}
            for i, e in enumerate(ent):
                r[f"Attention/Gs/l{i}/entropy"], r[f"Attention/Gs/l{i}/logit_spread"] = e, 1.0 - e
            if loc is not None:
                r["Attention/Gs/locality"] = loc
            f.write(json.dumps(r) + "\n")


def test_report_reads_every_variant_curve(tmp_path):
    _stats(str(tmp_path / "base"), [(1.0, [0.5, 0.7], 1.2), (2.0, [0.6, 0.9], 1.1)])
    _stats(str(tmp_path / "nodrop"), [(1.0, [0.4, 0.6], None)])
    assert attention_screen.main(["--report-only", "--variants", "base,nodrop", "--result-dir", str(tmp_path)]) == 0
    screen = json.load(open(tmp_path / "screen.json"))
    base = screen["variants"]["base"]["curve"]
    assert [r["kimg"] for r in base] == [1.0, 2.0] and base[1]["entropy"] == [0.6, 0.9] and base[0]["locality"] == 1.2
    assert screen["variants"]["nodrop"]["flags"] == ["--attention-dropout", "0"]
    assert screen["variants"]["nodrop"]["curve"][0]["locality"] is None
    assert os.path.getsize(tmp_path / "screen.png") > 0


@pytest.mark.parametrize("args,needle", [(["--variants", "nope"], "--variants"), (["--kimg", "0"], "--kimg")])
def test_bad_flags_are_one_line(args, needle, capsys):
    assert attention_screen.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
