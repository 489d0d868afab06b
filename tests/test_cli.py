"""The studies as commands, run in-process: one-line errors for bad flags and folders, nothing
written; small end-to-end runs; a study killed across a group boundary resumes to the same
results; the console script; charlm train/sample."""

import json
import shutil
import subprocess
import sys

import pytest

from recurrax import cli
from recurrax.cli import anbncn, charlm, chomsky, gradflow, memory

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def call(module, *argv, capsys):
    code = cli.run(module.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "module, flags, message",
    [
        (anbncn, ["--lr", "-1"], "argument --lr: must be positive, got -1"),
        (anbncn, ["--hidden", "0"], "argument --hidden: must be a positive integer, got 0"),
        (anbncn, ["--seeds", "x"], "argument --seeds: 'x' is not a valid int"),
        (anbncn, ["--language", "anbncnd"], "invalid choice"),
        (anbncn, ["--n-test", "5"], "--n-test (5) must be at least --n-max-train (10)"),
        (anbncn, ["--resume"], "--resume needs --out"),
        (anbncn, ["--forget-bias", "nan"], "must be a finite number"),
        (memory, ["adding", "--hidden", "0"], "argument --hidden: must be a positive integer"),
        (memory, ["adding", "--T", "1"], "T must be an int >= 2 for adding"),
        (memory, ["xor", "--lr", "0"], "argument --lr: must be positive, got 0"),
        (memory, ["sorting"], "invalid choice"),
        (chomsky, ["--tasks", "parity"], "invalid choice: 'parity'"),
        (chomsky, ["--test-max", "40"], "--test-max (40) must be above --train-max (40)"),
        (chomsky, ["--lr", "0"], "must be positive"),
        (chomsky, ["--steps", "0"], "must be a positive integer"),
        (charlm, ["train", "--dropout", "1"], "must be in [0, 1)"),
        (charlm, ["train", "--lr", "-3"], "must be positive"),
        (charlm, ["sample", "--run", "nowhere"], "nowhere is not a folder"),
        (gradflow, ["--T", "1"], "need --T >= 2"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(module, flags, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = call(module, *flags, capsys=capsys)
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_console_script_dispatches_and_rejects_unknown_studies(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["nosuch"])
    assert exit_.value.code == 2 and "unknown study 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["memory", "xor", "--seeds", "0"])
    assert (
        exit_.value.code == 2 and "--seeds: must be a positive integer" in capsys.readouterr().err
    )


ANBN = ["--language", "anbn", "--hidden", "2", "3", "--lr", "0.05", "--forget-bias", "0"]
ANBN += ["--seeds", "4", "--steps", "150", "--n-max-train", "4", "--n-test", "30", "--no-progress"]


FAULTS = """
import resource, sys
import numpy as np
from recurrax import cli
if sys.argv[1] == "keep" and not cli.keep_freed_memory():
    print("not-applied")
    raise SystemExit
np.ones(1 << 23)  # 64 MB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    np.ones(1 << 23)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_keep_freed_memory_reuses_pages_instead_of_faulting_them_in_again():
    faults = {}
    for mode in ("keep", "default"):
        done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        if done.stdout.strip() == "not-applied":
            pytest.skip("no glibc mallopt on this platform")
        faults[mode] = int(done.stdout)
    # glibc's default mmaps each 64 MB buffer anew, and its pages fault in again every time
    assert faults["keep"] * 20 < faults["default"], faults


def test_main_job_small_run_kill_across_a_group_boundary_and_resume(tmp_path, capsys):
    a = tmp_path / "a"
    code, out, err = call(anbncn, *ANBN, "--out", a, capsys=capsys)
    assert code == 0, err
    assert "summary over 8 runs" in out and "counter report" in out and "strict" in out
    for name in ("summary.json", "members.csv", "ranges.png", "mechanics.png", "counters.txt"):
        assert (a / name).stat().st_size > 0
    summary = json.loads((a / "summary.json").read_text())
    assert {m["hidden"] for m in summary["members"]} == {2, 3}
    assert all(m["strict"] <= m["argmax"] for m in summary["members"])  # strict is stricter
    # the same study, "killed" during the second group: its result and last checkpoint are gone
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "lstm-peephole-h3.json").unlink()
    for name in ("summary.json", "mechanics.png", "members.csv"):
        (b / name).unlink()
    run = b / "lstm-peephole-h3"
    shutil.rmtree(run / "checkpoints" / "1")  # 150 steps = 1 chunk of 8 evaluations
    (run / "summary.json").unlink()
    code, out_b, err = call(anbncn, *ANBN, "--out", b, capsys=capsys)
    assert code == 2 and "already holds files" in err  # no silent overwrite
    code, out_b, err = call(anbncn, *ANBN, "--out", b, "--resume", capsys=capsys)
    assert code == 0, err
    resumed = json.loads((b / "summary.json").read_text())
    assert resumed["members"] == summary["members"] and resumed["configs"] == summary["configs"]
    assert (b / "members.csv").read_text() == (a / "members.csv").read_text()
    # inspect a finished study without retraining; other flags than the study's are refused
    code, out_c, err = call(anbncn, *ANBN, "--out", b, "--inspect", "2", capsys=capsys)
    assert code == 0 and "seed 2" in out_c, err
    code, _, err = call(anbncn, *ANBN[:-1], "--steps", "99", "--out", b, "--resume", capsys=capsys)
    assert code == 2 and "other flags" in err


def test_memory_small_sweep(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["xor", "--T", "10", "20", "--cells", "rnn-tanh", "gru", "--hidden", "8"]
    flags += ["--seeds", "2", "--steps", "100", "--lr", "0.05", "--out", out, "--no-progress"]
    code, stdout, err = call(memory, *flags, capsys=capsys)
    assert code == 0, err
    assert "length sweep" in stdout and "baseline loss 0.6931" in stdout
    for name in ("results.json", "results.csv", "curves_T10.png", "curves_T20.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    for r in results["results"].values():
        for row in r["rows"]:
            # every median ends clearly below the baseline, so it crossed at some evaluation
            assert row["median"] <= 0.1 * r["baseline"], row
            assert 0 < row["median_clear_step"] <= 100
            assert 0 < row["median_clear_s"] <= row["seconds"]


def test_chomsky_small_suite(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--tasks", "cycle_navigation", "reverse_string", "--cells", "lstm", "rnn-tanh"]
    flags += ["--hidden", "8", "--steps", "20", "--train-max", "6", "--test-max", "9"]
    flags += ["--per-length", "4", "--out", out, "--no-progress"]
    code, stdout, err = call(chomsky, *flags, capsys=capsys)
    assert code == 0, err
    data = json.loads((out / "results.json").read_text())["results"]
    row = data["reverse_string"]["lstm"]
    assert row["lengths"] == [7, 8, 9] and len(row["score"]) == 3  # 3 learning rates x 1 seed
    assert all(0 <= s <= 1 for s in row["score"])
    assert abs(sum(row["score"]) - sum(sum(a) / 3 for a in row["acc_by_length"])) < 1e-6
    lines = (out / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + 4 and (out / "cycle_navigation.png").stat().st_size > 0


def test_charlm_train_sample_and_errors(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    flags = ["train", "--corpus", corpus, "--steps", "40", "--eval-every", "20", "--hidden", "16"]
    flags += ["--layers", "1", "--seq", "16", "--batch", "4", "--out", out, "--no-progress"]
    code, stdout, err = call(charlm, *flags, capsys=capsys)
    assert code == 0 and "bits/char" in stdout, err
    code, stdout, err = call(
        charlm, "sample", "--run", out, "--prompt", "the", "--length", "30", capsys=capsys
    )
    assert code == 0 and stdout.startswith("the") and len(stdout.rstrip("\n")) >= 33
    code, _, err = call(charlm, "sample", "--run", out, "--prompt", "Zé", capsys=capsys)
    assert code == 2 and "the prompt has characters not in the vocabulary: 'Zé'" in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    code, _, err = call(charlm, "sample", "--run", foreign, capsys=capsys)
    assert code == 2 and "not a recurrax run folder" in err and "Traceback" not in err
    short = tmp_path / "s.txt"
    short.write_text("abc")
    code, _, err = call(charlm, "train", "--corpus", short, "--out", tmp_path / "x", capsys=capsys)
    assert code == 2 and "too short" in err


def test_gradflow_small_run(tmp_path, capsys):
    out = tmp_path / "g"
    flags = ["--T", "6", "--seeds", "2", "--retention-T", "10", "--forget-bias", "1", "-1"]
    code, stdout, err = call(gradflow, *flags, "--out", out, capsys=capsys)
    assert code == 0, err
    data = json.loads((out / "gradflow.json").read_text())
    plus, minus = data["h0"]["lstm b_f=+1"], data["h0"]["lstm b_f=-1"]
    assert plus["sigma_bf"] > minus["sigma_bf"] and len(plus["median"]) == 6
    assert plus["median"][-1] > minus["median"][-1]  # the gradient survives longer with b_f = +1
    assert (out / "gradflow.png").stat().st_size > 0 and "retention" in stdout
