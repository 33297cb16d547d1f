"""The converter's parity check on near-tied scores: judged on the errors, not on rounding-noise ranks."""

from __future__ import annotations

import numpy as np

from converter.parity import NEAR_TIE_REL_ERROR, compare, spearman
from converter.quantize import FLOAT_LIMITS, QUANTIZED_LIMITS


def test_constant_held_out_scores_pass_on_their_relative_error() -> None:
    # rogue_agent_key_updown: eight held-out scores equal to seven digits; the float32 bundle is off by 1e-13
    keras = np.array([6.547107824e-07, 6.547107824e-07] + [6.547109540e-07] * 6)
    bundle = keras + np.array([3.8e-13, 3.1e-13, -3.4e-13, 3.3e-13, 3.4e-13, -3.2e-13, 3.3e-13, 3.5e-13])
    result = compare("heldout", keras, bundle, bundle.copy(), 1e-6, FLOAT_LIMITS)
    assert result.spearman < FLOAT_LIMITS.min_spearman  # the rank test alone would drop every mode
    assert result.passed and result.judged_on == "relative error" and result.max_rel_diff < 1e-6


def test_near_tied_pairs_swapping_places_pass_but_real_disorder_fails() -> None:
    keras = np.array([6.5471e-07, 6.5472e-07, 0.124006310, 0.124006316, 0.162, 0.245, 0.562140203, 0.562140204])
    swapped = keras.copy()
    swapped[[2, 3]] = swapped[[3, 2]]  # a near-tie reordered by float noise
    swapped[[6, 7]] = swapped[[7, 6]]
    ok = compare("stressed", keras, swapped, swapped.copy(), 1.0, FLOAT_LIMITS)
    assert ok.passed and ok.judged_on == "spearman, near-ties merged" and ok.spearman == 1.0
    assert spearman(keras, swapped) < FLOAT_LIMITS.min_spearman  # the plain rank test would fail it
    scrambled = keras[::-1].copy()  # same values, wrong windows
    bad = compare("stressed", keras, scrambled, scrambled.copy(), 1.0, QUANTIZED_LIMITS)
    assert not bad.passed and bad.spearman < 0 and "spearman" in bad.reasons[0]
    # a near-constant set whose bundle scores are off by more than the tolerance fails on the error
    off = np.full(8, 2.0), np.full(8, 2.0) * (1 + 5 * NEAR_TIE_REL_ERROR)
    far = compare("heldout", off[0], off[1], off[1].copy(), 10.0, QUANTIZED_LIMITS)
    assert not far.passed and far.judged_on == "relative error" and "near-constant" in far.reasons[0]


def test_near_ties_do_not_excuse_flipped_decisions_or_order_leaks() -> None:
    keras = np.full(10, 2.0)
    # The bundle's near-constant scores straddle a threshold that Keras' clearly stays below (1e-5 of the
    # score is far more than rounding, far less than the rank rule's tolerance): those are real flips.
    bundle = keras + 5e-6 * np.arange(10)
    flipped = compare("heldout", keras, bundle, bundle.copy(), 2.0 + 1.7e-5, FLOAT_LIMITS)  # threshold between
    assert flipped.judged_on == "relative error" and flipped.flipped == 6
    assert not flipped.passed and any("flipped" in r for r in flipped.reasons)
    # ... while a threshold within rounding (1e-6 relative) of Keras' scores is a tie, not a decision
    bundle = keras + 1e-9 * np.arange(10)
    tied = compare("heldout", keras, bundle, bundle.copy(), 2.0 + 5e-9, FLOAT_LIMITS)
    assert tied.flipped == 0 and tied.passed
    leaky = compare("heldout", keras, bundle, bundle[::-1].copy(), 10.0, FLOAT_LIMITS)
    assert not leaky.passed and any("order" in r for r in leaky.reasons)
