"""``attnlab train gat`` / ``train han``: files written, mean ± std reported, bad input rejected."""

import json

from attnlab.cli.main import main
from attnlab.models import GAT, HAN


def test_train_gat_writes_model_metrics_and_picture(tmp_path, capsys):
    assert main(["train", "gat", "--steps", "3", "--seeds", "2", "--quiet", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    accs = [run["test_acc"] for run in metrics["runs"]]
    assert len(accs) == 2 and abs(metrics["test_acc_mean"] - sum(accs) / 2) < 1e-9
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"
    GAT.from_pretrained(tmp_path)
    assert "±" in capsys.readouterr().out
    assert main(["viz", "--ckpt", str(tmp_path), "--out", str(tmp_path / "viz")]) == 0
    assert (tmp_path / "viz" / "gat_attention.png").read_bytes()[:4] == b"\x89PNG"


def test_train_han_reports_semantic_weights(tmp_path):
    assert main(["train", "han", "--steps", "2", "--seeds", "1", "--quiet", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert abs(sum(metrics["semantic_weights"].values()) - 1.0) < 1e-5
    HAN.from_pretrained(tmp_path)


def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    assert main(["train", "gat", "--edges", str(tmp_path / "e.csv"), "--out", str(tmp_path / "o")]) == 2
    assert main(["train", "gat", "--data", "sbm", "--homophily", "-1", "--out", str(tmp_path / "o")]) == 2
    assert main(["train", "gat", "--seeds", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("attnlab: error:") for line in err)
    assert not (tmp_path / "o").exists()
