import os

import pytest

from kcnn.atomic import atomic_directory, atomic_file, restore


def test_failed_file_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


def test_failed_directory_write_leaves_the_old_directory(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "settings.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "settings.json").write_text("new")
        raise RuntimeError("killed")
    assert (target / "settings.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]


def test_directory_write_replaces_the_old_directory(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "settings.json").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["settings.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with atomic_directory(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_a_folder_set_aside_by_a_killed_run_is_put_back(tmp_path):
    aside = tmp_path / ".model.abcd1234.old" / "previous"
    aside.mkdir(parents=True)
    (aside / "settings.json").write_text("old")
    (tmp_path / ".model.efgh5678.tmp").mkdir()
    (tmp_path / ".other.abcd1234.tmp").mkdir()  # another output's
    restore(tmp_path / "model")
    assert (tmp_path / "model" / "settings.json").read_text() == "old"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".model.lock", ".other.abcd1234.tmp", "model"]
