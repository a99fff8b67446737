"""COCO caption metrics on fixed captions, against numbers worked out by hand from their definitions."""

import math
import shutil

import pytest

pytest.importorskip("pycocoevalcap")
if shutil.which("java") is None:
    pytest.skip("the PTB tokenizer and METEOR need a Java runtime", allow_module_level=True)

from u2s_datasets.evaluation.caption_scores import compute_caption_scores  # noqa: E402


def test_bleu_and_rouge_on_two_images():
    result = compute_caption_scores(
        ["A man riding a horse.", "a dog in snow"],
        [["A man is riding a horse.", "a person rides a horse"], ["Two dogs play in the snow."]], meteor=False)
    # Clipped n-gram matches over both images: 7 of 9 words, 3 of 7 bigrams, 1 of 5 trigrams, 0 of 3 4-grams.
    # Brevity: 9 words against the closest reference lengths 5 + 6 = 11.
    brevity = math.exp(1 - 11 / 9)
    assert result["bleu_1"] == pytest.approx(7 / 9 * brevity, rel=1e-6)
    assert result["bleu_2"] == pytest.approx((7 / 9 * 3 / 7) ** (1 / 2) * brevity, rel=1e-6)
    assert result["bleu_3"] == pytest.approx((7 / 9 * 3 / 7 * 1 / 5) ** (1 / 3) * brevity, rel=1e-6)
    assert result["bleu_4"] < 1e-3

    def rouge(p, r, beta=1.2):
        return (1 + beta ** 2) * p * r / (r + beta ** 2 * p)

    # Longest common subsequences: image 1 "a man riding a horse" (5 of 5 and 5 of 6 words, the best precision
    # and recall over the references), image 2 "in snow" (2 of 4, 2 of 6).
    expected = [rouge(1.0, 5 / 6), rouge(2 / 4, 2 / 6)]
    assert result["per_image"]["rouge_l"] == pytest.approx(expected, rel=1e-6)
    assert result["rouge_l"] == pytest.approx(sum(expected) / 2, rel=1e-6)


def test_cider_d_on_references_that_share_no_ngram():
    # Every n-gram occurs in one reference of two: idf log 2 throughout, so each n-gram order's cosine is
    # the share of matched n-grams over the norms; the length gap of one word costs exp(-1 / (2 * 6^2)).
    result = compute_caption_scores(["red bus on the", "two cats sleep indoors now"],
                                    [["red bus on the road"], ["two cats sleep indoors now"]], meteor=False)
    orders = [4 / (math.sqrt(4) * math.sqrt(5)), 3 / (math.sqrt(3) * math.sqrt(4)),
              2 / (math.sqrt(2) * math.sqrt(3)), 1 / (math.sqrt(1) * math.sqrt(2))]
    first = 10 * sum(orders) / 4 * math.exp(-1 / 72)
    assert result["per_image"]["cider"] == pytest.approx([first, 10.0], rel=1e-6)
    assert result["cider"] == pytest.approx((first + 10.0) / 2, rel=1e-6)


def test_meteor_counts_fragmentation():
    result = compute_caption_scores(["the cat sat on the mat", "the cat on the mat sat"],
                                    [["the cat sat on the mat"], ["the cat sat on the mat"]])
    # All six words match in both; the second falls into 3 chunks: METEOR 1.5's penalty 0.6 * (3 / 6) ^ 0.2.
    assert result["per_image"]["meteor"] == pytest.approx([1.0, 1 - 0.6 * (3 / 6) ** 0.2], abs=1e-4)


def test_bad_references_name_the_row():
    with pytest.raises(ValueError, match=r"references\[1\]"):
        compute_caption_scores(["a", "b"], [["a"], "b"])
    with pytest.raises(TypeError, match=r"predictions\[0\]"):
        compute_caption_scores([None], [["a"]])
