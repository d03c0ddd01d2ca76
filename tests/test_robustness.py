"""A model keeps its answers on lossy and band-limited copies of the same music."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import background
import numpy as np
import pytest
import soundfile as sf
import soxr
from shared_data import GTZAN_MINI, write_manifest

from kcnn.audio import load_audio
from kcnn.cache import FeatureCache, default_cache_dir
from kcnn.extraction import Features, extract_batch
from kcnn.features import FeatureSettings, split_views
from kcnn.model import MusicModel

GENRES = ("classical", "hiphop", "metal", "reggae")


def clips(numbers: range) -> list[Path]:
    return [GTZAN_MINI / g / f"{g}.{n:05d}.wav" for g in GENRES for n in numbers]


TRAIN = ["--test-size", "0", "--words", "64", "--epochs", "15", "--conv-units", "100"]
TRAIN += ["--hidden-units", "50", "--validation-fraction", "0", "-q"]
"""`kcnn train` options of the models compared: otherwise the defaults, all epochs trained
on every song (no early stopping)."""


@background.command("default_model")
def train_default_model(work: Path) -> list[object]:
    manifest = write_manifest(work / "train.csv", clips(range(6)))
    return ["train", manifest, "--out", work / "model", *TRAIN]


@background.command("blind_model")
def train_blind_model(work: Path) -> list[object]:
    """The same model without the 3.8 kHz view."""
    manifest = write_manifest(work / "train.csv", clips(range(6)))
    return ["train", manifest, "--out", work / "model", *TRAIN, "--view-rates"]


def features(model: MusicModel, paths: list[Path]) -> Sequence[Features]:
    """The features `model` reads of `paths`, through the session's feature cache."""
    settings = model.feature_settings
    cache = FeatureCache(default_cache_dir(), settings)
    batch = extract_batch(paths, settings, model.min_frames, cache, progress=False)
    assert not batch.skipped
    return batch.features


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Held-out clips and their copies: 16 and 8 kHz WAV, ogg/vorbis and mp3."""
    out = tmp_path_factory.mktemp("copies")

    def copy(clip: Path) -> dict[str, Path]:
        y = load_audio(clip)
        made = {"original": clip}
        for rate in (16000, 8000):
            made[f"{rate // 1000} kHz"] = out / f"{clip.stem}-{rate}.wav"
            sf.write(made[f"{rate // 1000} kHz"], soxr.resample(y, 22050, rate), rate)
        made["ogg"], made["mp3"] = out / f"{clip.stem}.ogg", out / f"{clip.stem}.mp3"
        sf.write(made["ogg"], y, 22050, format="OGG", subtype="VORBIS")
        sf.write(made["mp3"], y, 22050, format="MP3", subtype="MPEG_LAYER_III")
        return made

    with ThreadPoolExecutor(2) as pool:  # the encoders run outside the GIL: on both cores
        each = list(pool.map(copy, clips(range(6, 10))))
    return {kind: [made[kind] for made in each] for kind in each[0]}


@pytest.fixture(scope="module")
def labels(copies) -> Callable[[MusicModel, str], np.ndarray]:
    """The labels a model gives to each kind of clip, computed once per model and kind."""

    @functools.cache
    def of(model: MusicModel, kind: str) -> np.ndarray:
        return model.predict(features(model, copies[kind]))

    return of


def agreement(
    labels: Callable[[MusicModel, str], np.ndarray], model: MusicModel, kind: str
) -> float:
    """The share of held-out clips whose `kind` copy gets the label of the original."""
    return float((labels(model, "original") == labels(model, kind)).mean())


@pytest.fixture(scope="module")
def default_model(background_jobs) -> MusicModel:
    model = MusicModel.load(background_jobs.output("default_model") / "model")
    assert model.feature_settings == FeatureSettings()
    return model


@pytest.fixture(scope="module")
def blind_model(background_jobs) -> MusicModel:
    model = MusicModel.load(background_jobs.output("blind_model") / "model")
    assert model.feature_settings == FeatureSettings(view_rates=())
    return model


def test_default_model_keeps_its_answers_on_16_khz_and_lossy_copies(default_model, labels):
    assert agreement(labels, default_model, "16 kHz") >= 0.9
    assert agreement(labels, default_model, "ogg") >= 0.8
    assert agreement(labels, default_model, "mp3") >= 0.8


def test_band_limited_views_keep_answers_on_8_khz_copies(default_model, blind_model, labels):
    blind = agreement(labels, blind_model, "8 kHz")
    assert agreement(labels, default_model, "8 kHz") >= blind + 0.1


def test_features_barely_change_on_band_limited_copies(copies):
    settings = FeatureSettings()
    original, wide, narrow = (
        split_views(extract_batch([copies[k][0]], settings, progress=False).features[0])
        for k in ("original", "16 kHz", "8 kHz")
    )
    # a 16 kHz copy has all that the features look at; an 8 kHz copy matches the 3.8 kHz view
    for copy, view in ((wide, 0), (wide, 1), (narrow, 1)):
        for name in settings.types:
            a, b = original[view][name], copy[view][name]
            n = min(len(a), len(b))
            assert np.corrcoef(a[:n].mean(0), b[:n].mean(0))[0, 1] > 0.95, name
