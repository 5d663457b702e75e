"""BLEU: perfect hypotheses, hand-computed values, the course's unigram score."""

from __future__ import annotations

import math

import pytest

from cvlab.metrics.bleu import corpus_bleu, course_unigram_bleu, mean_course_bleu, tokens


def test_perfect_hypotheses_score_one():
    refs = [["<START> a large red circle left of a small blue square <END>",
             "<START> a small blue square right of a large red circle <END>"],
            ["<START> there is a small green triangle <END>"]]
    hyps = ["<START> a small blue square right of a large red circle <END>",
            "<START> there is a small green triangle <END>"]
    assert corpus_bleu(refs, hyps, 1) == pytest.approx(1.0)
    assert corpus_bleu(refs, hyps, 4) == pytest.approx(1.0)
    assert course_unigram_bleu(refs[1][0], hyps[1]) == pytest.approx(1.0)


def test_hand_computed_values():
    # hypothesis 5 words, all in the reference (6 words): precision 1, brevity exp(1 - 6/5)
    ref, hyp = "the cat sat on the mat", "the cat sat on mat"
    assert corpus_bleu([[ref]], [hyp], 1) == pytest.approx(math.exp(1 - 6 / 5))
    # BLEU-4: p1 = 5/5, p2 = 3/4, p3 = 2/3, p4 = 1/2
    expected = math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert corpus_bleu([[ref]], [hyp], 4) == pytest.approx(expected)
    # clipping: "the the the" against one "the" -> p1 = 1/3; longer than ref 2: no penalty
    assert corpus_bleu([["the cat"]], ["the the the"], 1) == pytest.approx(1 / 3)
    assert corpus_bleu([["a b c d"]], ["w x y z"], 4) == 0.0


def test_bleu4_is_exactly_zero_when_no_4gram_matches():
    # every unigram matches, 3 of 6 bigrams, 1 of 5 trigrams, none of the 4 4-grams
    refs, hyps = [["a red circle left of a blue square"]], ["a red square left of a circle"]
    assert corpus_bleu(refs, hyps, 3) > 0.3
    assert corpus_bleu(refs, hyps, 4) == 0.0
    # one image with a 4-gram match is enough at corpus level
    refs.append(["there is a small green triangle"])
    hyps.append("there is a small blue triangle")  # 5/6, 3/5, 2/4, 1/3
    # p1 = (7 + 5) / (7 + 6), p2 = (3 + 3) / (6 + 5), p3 = (1 + 2) / (5 + 4), p4 = (0 + 1) /
    # (4 + 3); hypotheses of 7 + 6 words against references of 8 + 6: brevity exp(1 - 14 / 13)
    expected = math.exp(1 - 14 / 13) * (12 / 13 * 6 / 11 * 3 / 9 * 1 / 7) ** 0.25
    assert corpus_bleu(refs, hyps, 4) == pytest.approx(expected, rel=1e-12)


def test_course_unigram_drops_special_tokens():
    assert tokens("<START> a <UNK> cat <END> <NULL>") == ["a", "cat"]
    score = course_unigram_bleu("<START> a dog on a mat <END>", "<START> a cat on a mat <END>")
    assert score == pytest.approx(4 / 5)
    assert mean_course_bleu(["a b", "c d"], ["a b", "x y"]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        corpus_bleu([["a"]], ["a", "b"])
