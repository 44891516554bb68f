"""The model card says the CPU its times came from, and that int8's lead depends on it."""

import json
import shutil
from pathlib import Path

import pytest

from posterq.cpu import cpu_facts, describe
from posterq.training.card import PLOTS, write_card
from posterq.training.shipping import cpu_note
from tests.test_cpu import AVX2_ONLY, WITH_VNNI

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "effnet-lite0-posters"


@pytest.fixture
def card_folder(tmp_path):
    """The shipped bundle's metadata and plots in a folder of their own (the model is not read)."""
    folder = tmp_path / SHIPPED.name
    folder.mkdir()
    for name in ("model.json", *PLOTS):
        if (SHIPPED / name).exists():
            shutil.copy(SHIPPED / name, folder / name)
    return folder


def _with_cpu(folder: Path, facts: dict) -> None:
    meta = json.loads((folder / "model.json").read_text())
    meta["front"]["cpu"] = facts
    (folder / "model.json").write_text(json.dumps(meta))


def test_the_shipped_card_is_what_the_generator_writes(card_folder):
    # Its times came from a CPU no file recorded: the card says so rather than guess one.
    text = write_card(card_folder, None, SHIPPED.parents[1] / "bench/results/seed_network.json",
                      text_only=True).read_text()
    assert text == (SHIPPED / "README.md").read_text()
    assert "CPU model and vector features not recorded" in text
    assert cpu_note(None, "x86_64, 2 cores") in text


def test_text_only_links_the_plots_already_there_and_draws_none(card_folder):
    (card_folder / "precision_recall.png").unlink()
    before = {path.name: path.read_bytes() for path in card_folder.glob("*.png")}
    text = write_card(card_folder, None, text_only=True).read_text()
    assert "(precision_recall.png)" not in text and "(front.png)" in text
    assert {path.name: path.read_bytes() for path in card_folder.glob("*.png")} == before


@pytest.mark.parametrize("cpuinfo, says", [(WITH_VNNI, "which has them"),
                                           (AVX2_ONLY, "which has none of them")])
def test_a_card_names_the_cpu_of_its_times_and_what_int8_owes_it(card_folder, cpuinfo, says):
    facts = cpu_facts(cpuinfo)
    _with_cpu(card_folder, facts)
    text = write_card(card_folder, None, text_only=True).read_text()
    assert f"with one interpreter thread,\non {describe(facts)}." in text
    assert cpu_note(facts) in text and says in text
    assert "not recorded" not in text.split("## Training")[0]


def test_the_ship_rule_note_says_where_int8_gains():
    note = cpu_note(cpu_facts(AVX2_ONLY))
    assert "int8's lead over float16 depends on the CPU" in note and "VNNI" in note
    assert "AMD EPYC 7B12 (avx2, fma; 2 cores)" in note
