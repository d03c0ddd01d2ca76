"""The feature cache gives back exactly what was extracted, views included."""

from __future__ import annotations

import os
import shutil

import numpy as np
from shared_data import GTZAN_MINI

from kcnn.cache import FeatureCache
from kcnn.extraction import extract_file
from kcnn.features import FeatureSettings, feature_keys


def test_cached_features_hold_every_view(tmp_path):
    clip = GTZAN_MINI / "jazz" / "jazz.00001.wav"
    settings = FeatureSettings(view_rates=(8000, 4000))
    cache = FeatureCache(tmp_path / "cache", settings)
    fresh = extract_file(clip, settings, cache=cache)
    again = cache.get(clip)
    assert list(fresh) == list(again) == feature_keys(settings)
    assert "mel@4000" in again
    for key, values in fresh.items():
        np.testing.assert_array_equal(again[key], values)


def test_other_view_rates_are_another_entry(tmp_path):
    clip = GTZAN_MINI / "jazz" / "jazz.00001.wav"
    extract_file(clip, FeatureSettings(), cache=FeatureCache(tmp_path, FeatureSettings()))
    assert FeatureCache(tmp_path, FeatureSettings(view_rates=(4000,))).get(clip) is None


def test_a_name_that_is_not_utf8_is_cached(tmp_path):
    name = os.fsdecode(b"caf\xe9.wav")  # as the OS gives a Latin-1 name
    clip = tmp_path / name
    shutil.copy(GTZAN_MINI / "jazz" / "jazz.00001.wav", clip)
    cache = FeatureCache(tmp_path / "cache", FeatureSettings())
    fresh = extract_file(clip, FeatureSettings(), cache=cache)
    again = cache.get(clip)
    assert again is not None and list(again) == list(fresh)
