from pathlib import Path

import pytest
from shared_data import GTZAN_MINI

from kcnn.dataset import find_audio, read_labelled
from kcnn.errors import KcnnError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_per_label(tmp_path):
    touch(tmp_path / "rock" / "a.wav")
    touch(tmp_path / "rock" / "sub" / "b.mp3")
    touch(tmp_path / "jazz" / "c.flac")
    touch(tmp_path / "jazz" / "notes.txt")
    data = read_labelled(tmp_path)
    assert [p.name for p in data.paths] == ["c.flac", "a.wav", "b.mp3"]
    assert data.labels == ["jazz", "rock", "rock"]
    assert data.groups is None


def test_gtzan_mini_reads_as_it_ships():
    data = read_labelled(GTZAN_MINI)
    assert len(data) == 100
    assert sorted(set(data.labels)) == sorted(p.name for p in GTZAN_MINI.iterdir() if p.is_dir())


def test_manifest_with_groups_and_relative_paths(tmp_path):
    touch(tmp_path / "audio" / "x.wav")
    (tmp_path / "list.csv").write_text(
        "path,label,group\naudio/x.wav,pop,artist1\n/abs/y.ogg,rock,artist2\n"
    )
    data = read_labelled(tmp_path / "list.csv")
    assert data.paths == [tmp_path / "audio" / "x.wav", Path("/abs/y.ogg")]
    assert data.labels == ["pop", "rock"]
    assert data.groups == ["artist1", "artist2"]
    assert data.subset([1]).groups == ["artist2"]


def test_manifest_without_label_column_is_refused(tmp_path):
    (tmp_path / "list.csv").write_text("file,genre\na.wav,pop\n")
    with pytest.raises(KcnnError, match="path,label"):
        read_labelled(tmp_path / "list.csv")


def test_a_named_file_is_passed_on_for_decoding_to_report(tmp_path):
    assert find_audio([tmp_path / "nothing-here.wav"]) == [tmp_path / "nothing-here.wav"]


def test_missing_input_is_named(tmp_path):
    with pytest.raises(KcnnError, match="no audio files"):
        read_labelled(tmp_path)
