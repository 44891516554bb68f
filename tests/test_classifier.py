"""posterq.classifier: one invoke per batch, the same scores whatever the batch, errors in place."""

from pathlib import Path

import numpy as np
import pytest
from samples import poster_bytes, rewrite_meta

from posterq.bundle import load_bundle
from posterq.classifier import Classifier
from posterq.exceptions import BundleError, PosterqError
from posterq.genres import GENRES


@pytest.fixture(scope="module")
def classifier(tiny_bundle):
    return Classifier(tiny_bundle, num_threads=1)


@pytest.fixture(scope="module")
def inputs(classifier):
    return np.stack([classifier.preprocess(poster_bytes(seed, ("JPEG", "PNG")[seed % 2]))
                     for seed in range(6)])


def test_scores_are_probabilities(classifier, inputs):
    scores = classifier.predict(inputs)
    assert scores.shape == (6, len(GENRES)) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    assert not np.allclose(scores[0], scores[1])  # different posters, different scores


def test_batch_equals_singles(classifier, inputs):
    batched = classifier.predict(inputs)
    singles = np.concatenate([classifier.predict(inputs[i:i + 1]) for i in range(len(inputs))])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_batch_size_changes(classifier, inputs):
    # The interpreter is resized between calls; each size must still give the same scores.
    reference = classifier.predict(inputs)
    for size in (3, 1, 6, 2, 6):
        np.testing.assert_allclose(classifier.predict(inputs[:size]), reference[:size], atol=1e-5)
    assert classifier.predict(inputs[:0]).shape == (0, len(GENRES))


def test_wrong_input_shape(classifier):
    with pytest.raises(ValueError):
        classifier.predict(np.zeros((1, 32, 48, 3), np.float32))


def test_classify_keeps_order_and_errors(classifier, bad_files):
    good = [poster_bytes(seed) for seed in range(3)]
    files = [good[0], bad_files["text"].data, good[1], bad_files["empty"].data, good[2]]
    results = classifier.classify(files)
    assert [r.error.code if r.error else None for r in results] == [None, "not_an_image", None, "empty", None]
    alone = classifier.classify(good)
    for mixed, single in zip([results[0], results[2], results[4]], alone, strict=True):
        assert mixed.genres == single.genres
        assert mixed.scores == pytest.approx(single.scores, abs=1e-5)
    for result in results[::2]:
        assert 1 <= len(result.genres) <= 3
        assert set(result.scores) == set(GENRES)
        # Best first: genres in descending score order.
        ranked = [result.scores[g] for g in result.genres]
        assert ranked == sorted(ranked, reverse=True)
    assert results[1].genres == [] and results[1].scores == {}


def test_classify_only_bad_files(classifier, bad_files):
    results = classifier.classify([bad_files["empty"].data])
    assert results[0].error.code == "empty"
    assert classifier.classify([]) == []


def test_top_k(classifier):
    assert all(len(r.genres) == 1 for r in classifier.classify([poster_bytes(s) for s in range(4)], top_k=1))


def test_known_errors_and_a_top_k_per_item(classifier):
    # The worker's case: an item refused before decoding, and jobs with different top_k in one invoke.
    refused = PosterqError("the uploaded bytes expired", "upload_expired")
    posters = [poster_bytes(s) for s in range(3)]
    results = classifier.classify([posters[0], refused, posters[1], posters[2]], top_k=[1, None, None, 2])
    assert results[1].error is refused and results[1].genres == []
    assert len(results[0].genres) == 1
    assert results[2].genres == classifier.classify(posters[1:2])[0].genres  # None: the bundle's top_k
    assert results[3].genres == classifier.classify(posters[2:], top_k=2)[0].genres
    assert len(results[3].genres) <= 2
    with pytest.raises(ValueError):
        classifier.classify(posters, top_k=[1, 2])


@pytest.mark.parametrize("wrong", ["heat.jpg", b"\xff\xd8", Path("heat.jpg")])
def test_one_path_or_one_file_is_refused_not_read_per_character(classifier, wrong):
    with pytest.raises(TypeError):
        classifier.classify(wrong)


def test_model_with_other_genre_count_is_refused(copy_bundle):
    folder = copy_bundle()
    rewrite_meta(folder, genres=list(GENRES[:23]), label_rule={"thresholds": [0.5] * 23, "top_k": 3})
    with pytest.raises(BundleError) as caught:
        Classifier(load_bundle(folder))
    assert caught.value.code == "bundle_mismatch"


def test_a_solo_interpreter_scores_lone_posters_like_the_batch_one(tiny_bundle, inputs):
    both = Classifier(tiny_bundle, num_threads=1, solo_threads=2)
    batched = both.predict(inputs[:3])
    for i in range(3):
        np.testing.assert_allclose(both.predict(inputs[i:i + 1])[0], batched[i], atol=1e-5)
    assert both.predict(inputs[:3]).shape == batched.shape  # the batch interpreter still answers
    assert Classifier(tiny_bundle, num_threads=2, solo_threads=2)._solo is None  # nothing to gain
