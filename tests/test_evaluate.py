"""posterq.training.evaluate and `posterq evaluate` (its evaluate_cli) with the tiny real bundle."""

import argparse
import json

from samples import write_posters

from posterq.training.evaluate import evaluate, format_table
from posterq.training.evaluate_cli import add_arguments as add_evaluate_arguments
from posterq.training.evaluate_cli import run as run_evaluate


def labelled_folder(root):
    """Ten generated posters in a plain labels.csv, plus one file that is not an image."""
    posters = write_posters(root / "img", 10)
    (root / "img" / "broken.jpg").write_bytes(b"not a poster")
    rows = ["path,genres"]
    for i, path in enumerate(posters):
        rows.append(f"img/{path.name},{'Drama|Comedy' if i % 2 else 'Drama'}" if i < 7
                    else f"img/{path.name},Action")
    rows.append("img/broken.jpg,Horror")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_evaluate_reports_metrics_model_and_errors(tiny_bundle, tmp_path):
    result = evaluate(labelled_folder(tmp_path), model=tiny_bundle, batch_size=4, progress=False)
    assert result["model"] == {"name": "tiny-test", "version": "0.0.1"}
    assert result["data"]["layout"] == "csv" and result["data"]["n_posters"] == 11
    assert result["n_errors"] == 1 and result["errors"] == {"not_an_image": 1}
    assert result["n_posters"] == 10
    assert result["genres_scored"] == ["Drama"]  # Comedy has 3 positives, Action 3: under 5
    assert 0.0 <= result["macro_roc_auc"] <= 1.0
    assert result["per_genre"]["Drama"]["threshold"] == 0.5
    assert sum(entry["predicted"] for entry in result["per_genre"].values()) >= 10  # at least one each
    table = format_table(result)
    assert "Drama" in table and "macro ROC-AUC" in table and "tiny-test" in table


def test_run_evaluate_writes_json_and_prints_table(tiny_bundle, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    out = tmp_path / "out" / "metrics.json"
    args = parser.parse_args(["--data", str(labelled_folder(tmp_path)), "--model", str(tiny_bundle),
                              "--out", str(out), "--top-k", "2", "--no-progress"])
    assert run_evaluate(args) == 0
    written = json.loads(out.read_text())
    assert written["top_k"] == 2 and written["n_posters"] == 10
    assert "micro F1" in capsys.readouterr().out
