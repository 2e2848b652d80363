import pytest

from xasr.io import atomic_folder, atomic_path, write_atomic


def test_atomic_path_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "cuts.jsonl.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".jsonl.gz") as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".jsonl.gz") and tmp.name.startswith(".")
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["cuts.jsonl.gz"]
    with atomic_path(target, suffix=".jsonl.gz") as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["cuts.jsonl.gz"]


def test_write_atomic_keeps_newlines_and_a_long_name_works(tmp_path):
    target = tmp_path / ("x" * 250)
    write_atomic(target, "a\r\nb\n")
    assert target.read_bytes() == b"a\r\nb\n"


def test_atomic_folder_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (target / "old.txt").is_file()
    with atomic_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["model"]
