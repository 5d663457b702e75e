"""BLEU for generated captions: corpus BLEU-1/BLEU-4 (nltk) and the course's unigram score.

Captions are compared as word lists with the special tokens (<START>, <END>, <NULL>,
<UNK>) removed. Corpus BLEU uses every reference caption of an image (clipped n-gram
counts are taken against all of them); the course-style score is the mean over samples of
nltk's sentence BLEU with weights [1] against the one sampled reference caption, as in the
course notebooks' `BLEU_score` / `evaluate_model`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from cvlab.data.constants import SPECIAL_TOKENS


def tokens(caption: str) -> list[str]:
    """A decoded caption as words without the special tokens."""
    return [w for w in caption.split() if w not in SPECIAL_TOKENS]


def corpus_bleu(references: Sequence[Sequence[str]], hypotheses: Sequence[str],
                max_order: int = 4) -> float:
    """Corpus BLEU with uniform weights up to `max_order` (1 = BLEU-1, 4 = BLEU-4).

    references[i] are all reference captions of image i (strings), hypotheses[i] its
    generated caption. No smoothing (the standard corpus score): exactly 0.0 when some order
    up to `max_order` has no matching n-gram in the whole corpus (nltk alone would return
    about 1e-78 there, the geometric mean taken with a float's smallest positive value).
    """
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets but {len(hypotheses)} hypotheses")
    if not hypotheses:
        return 0.0
    refs = [[tokens(r) for r in group] for group in references]
    hyps = [tokens(h) for h in hypotheses]
    weights = tuple([1.0 / max_order] * max_order)
    unmatched_orders: list[int] = []

    def no_smoothing(p_n: list, *args: object, **kwargs: object) -> list:
        """nltk's method0 (no smoothing), noting the orders with no match at all."""
        unmatched_orders.extend(i + 1 for i, p in enumerate(p_n) if p.numerator == 0)
        return SmoothingFunction().method0(p_n, *args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns when some order has no match
        score = nltk_corpus_bleu(refs, hyps, weights=weights, smoothing_function=no_smoothing)
    return 0.0 if unmatched_orders else float(score)


def course_unigram_bleu(reference: str, hypothesis: str) -> float:
    """The course's BLEU_score: sentence BLEU, weights [1], one reference caption."""
    from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sentence_bleu([tokens(reference)], tokens(hypothesis), weights=[1]))


def mean_course_bleu(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """The course's evaluate_model score: mean course_unigram_bleu over (reference, sample)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not hypotheses:
        return 0.0
    return sum(course_unigram_bleu(r, h) for r, h in zip(references, hypotheses)) / len(hypotheses)
