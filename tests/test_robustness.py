"""A model keeps its answers on lossy and band-limited copies of the same music."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
from shared_data import GTZAN_MINI

from kcnn.audio import load_audio
from kcnn.extraction import FeatureExtractor, extract_batch
from kcnn.features import FeatureSettings
from kcnn.model import MusicModel, make_pipeline
from kcnn.training import KCNNClassifier
from kcnn.words import AudioWords

GENRES = ("classical", "hiphop", "metal", "reggae")


def clips(numbers: range) -> list:
    return [GTZAN_MINI / g / f"{g}.{n:05d}.wav" for g in GENRES for n in numbers]


def train(fmax: float | None) -> MusicModel:
    words = AudioWords(n_words=64)
    pipe = make_pipeline(
        FeatureExtractor(fmax=fmax, min_frames=words.segment_frames),
        words,
        KCNNClassifier(epochs=25, conv_units=(200,), hidden_units=(100,)),
    )
    model = MusicModel(pipe)
    train_clips = clips(range(6))
    batch = extract_batch(train_clips, model.feature_settings, model.min_frames, progress=False)
    return model.fit(batch.features, [c.parent.name for c in train_clips])


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Held-out clips and their copies: 8 kHz WAV, ogg/vorbis and mp3."""
    out = tmp_path_factory.mktemp("copies")
    made: dict[str, list] = {"original": clips(range(6, 10)), "8 kHz": [], "ogg": [], "mp3": []}
    for clip in made["original"]:
        y = load_audio(clip)
        narrow = out / f"{clip.stem}-8k.wav"
        sf.write(narrow, soxr.resample(y, 22050, 8000), 8000)
        made["8 kHz"].append(narrow)
        sf.write(out / f"{clip.stem}.ogg", y, 22050, format="OGG", subtype="VORBIS")
        made["ogg"].append(out / f"{clip.stem}.ogg")
        sf.write(out / f"{clip.stem}.mp3", y, 22050, format="MP3", subtype="MPEG_LAYER_III")
        made["mp3"].append(out / f"{clip.stem}.mp3")
    return made


def agreement(model: MusicModel, copies: dict, kind: str) -> float:
    def labels(paths):
        batch = extract_batch(paths, model.feature_settings, model.min_frames, progress=False)
        assert not batch.skipped
        return model.predict(batch.features)

    return float((labels(copies["original"]) == labels(copies[kind])).mean())


def test_full_band_model_keeps_its_answers_on_lossy_copies(copies):
    model = train(fmax=None)
    assert agreement(model, copies, "ogg") >= 0.8
    assert agreement(model, copies, "mp3") >= 0.8


def test_model_limited_to_3800_hz_keeps_its_answers_on_8_khz_copies(copies):
    model = train(fmax=3800.0)
    assert agreement(model, copies, "8 kHz") >= 0.9
    assert agreement(model, copies, "mp3") >= 0.8


def test_features_below_fmax_barely_change_on_an_8_khz_copy(copies):
    settings = FeatureSettings(fmax=3800.0)
    original, narrow = (
        extract_batch([copies[k][0]], settings, progress=False).features[0]
        for k in ("original", "8 kHz")
    )
    for name in settings.types:
        n = min(len(original[name]), len(narrow[name]))
        a, b = original[name][:n].mean(0), narrow[name][:n].mean(0)
        assert np.corrcoef(a, b)[0, 1] > 0.95, name
