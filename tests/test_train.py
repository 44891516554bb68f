"""The training pipeline end to end on a small generated dataset: bundle, comparison, card, resume."""

import json

import numpy as np
import pytest
from samples import write_posters

from posterq.bundle import load_bundle
from posterq.classifier import Classifier
from posterq.cpu import cpu_facts, describe
from posterq.genres import GENRES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory):
    """48 generated posters in the plain `path,genres` layout; every genre appears at least twice."""
    folder = tmp_path_factory.mktemp("data")
    paths = write_posters(folder / "images", 48)
    lines = ["path,genres"]
    for index, path in enumerate(paths):
        genres = {GENRES[index % len(GENRES)], GENRES[(index * 7) % len(GENRES)]}
        lines.append(f"images/{path.name},{'|'.join(sorted(genres))}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder / "labels.csv"


def test_effnet_pipeline_writes_a_verified_bundle_with_its_comparison(labelled_csv, tmp_path):
    from posterq.training.card import write_card
    from posterq.training.train import train

    out, work = tmp_path / "bundle", tmp_path / "work"
    meta = train(labelled_csv, arch="effnet-lite0", out=out, work=work, epochs=1, input_size=(64, 48))
    bundle = load_bundle(out)
    assert bundle.input_size == (64, 48) and bundle.genres == GENRES
    assert set(meta["comparison"]["variants"]) == {"float32", "float16", "int8-dynamic", "int8-full",
                                                   "int8-full-200"}
    assert meta["variant"] in meta["comparison"]["variants"]
    # The float32 export computes what Keras computes.
    assert meta["comparison"]["variants"]["float32"]["vs_keras"]["max_abs_score_diff"] < 1e-4
    for key in ("macro_roc_auc", "macro_average_precision", "micro_f1", "samples_f1"):
        assert key in meta["metrics"]
    predictions = Classifier(out).classify(
        [path.read_bytes() for path in sorted((labelled_csv.parent / "images").iterdir())[:3]])
    assert all(1 <= len(p.genres) <= 3 and p.error is None for p in predictions)
    card = write_card(out, work)
    assert "seed network" not in card.read_text() and (out / "per_genre_ap.png").exists()

    # A second run finds the finished fit and reuses it instead of training again.
    assert (work / "fit.done").exists()
    again = train(labelled_csv, arch="effnet-lite0", out=out, work=work, epochs=1, input_size=(64, 48))
    # The same fit: each export's thresholds come out the same. Which export ships is not compared:
    # the rule times the exports, and two timings on a busy machine may rank them differently.
    for name in ("float32", "float16"):
        variant, before = again["comparison"]["variants"][name], meta["comparison"]["variants"][name]
        assert variant["thresholds"] == before["thresholds"], name

    # `posterq ship` times the run's variants again, applies the rule and writes bundle, card and front.
    from posterq.training.front import ship

    summary = ship([work], tmp_path / "shipped", "9.9.9", tmp_path / "fast")
    shipped = load_bundle(tmp_path / "shipped")
    front = shipped.meta["front"]
    assert front["shipped"] == summary["chosen"]["default"] == f"64x48 {shipped.meta['variant']}"
    assert set(front["candidates"]) == {f"64x48 {name}" for name in again["comparison"]["variants"]}
    assert front["on_front"] and front["shipped"] in front["on_front"]
    variant = again["comparison"]["variants"][shipped.meta["variant"]]
    assert shipped.meta["label_rule"]["thresholds"] == variant["thresholds"]
    assert shipped.meta["metrics"]["macro_roc_auc"] == variant["metrics"]["macro_roc_auc"]
    assert (tmp_path / "shipped" / "model.tflite").read_bytes() == (
        work / "variants" / shipped.meta["variant"] / "model.tflite").read_bytes()
    card = (tmp_path / "shipped" / "README.md").read_text()
    assert "## The front" in card
    # The times are this CPU's, and the bundle, the card and ship's output say so.
    assert front["cpu"] == meta["training"]["cpu"] == cpu_facts()
    assert f"on {describe(cpu_facts())}." in card and summary["cpu_note"] in card
    assert (tmp_path / "shipped" / "front.png").exists()
    assert (tmp_path / "shipped" / "precision_recall.png").exists()
    # The fast bundle exists only when the front earns it, and then it is faster.
    if summary["chosen"].get("fast"):
        fast = load_bundle(tmp_path / "fast").meta["front"]["candidates"]
        assert fast[summary["chosen"]["fast"]]["ms_per_poster_1_core"] * 1.5 <= fast[front["shipped"]][
            "ms_per_poster_1_core"]
    else:
        assert not (tmp_path / "fast").exists()


def test_seed_pipeline_trains_the_original_network(labelled_csv, tmp_path):
    from posterq.training.train import train

    meta = train(labelled_csv, arch="seed", out=tmp_path / "seed", work=tmp_path / "work", epochs=1,
                 input_size=(40, 40))
    assert meta["architecture"] == "seed" and meta["variant"] == "float32"
    scores = Classifier(tmp_path / "seed").predict(np.zeros((2, 40, 40, 3), dtype=np.float32))
    assert scores.shape == (2, len(GENRES))
    assert json.loads((tmp_path / "seed" / "model.json").read_text())["training"]["recipe"]["epochs"] == 1
