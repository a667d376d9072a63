import numpy as np
import pytest
from PIL import Image

from codec.data.folder import ImageFolder, UnreadableImageError, load_rgb


def _write(folder):
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(folder / "gray.png")
    Image.fromarray(np.full((7, 5, 4), 128, np.uint8), "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.full((300, 17, 3), 9, np.uint8)).save(folder / "tall.jpg")


def test_modes_and_sizes_become_rgb(tmp_path):
    _write(tmp_path)
    f = ImageFolder(tmp_path)
    shapes = {name: img.shape for name, img in (f[i] for i in range(len(f)))}
    assert shapes == {"gray.png": (10, 12, 3), "rgba.png": (7, 5, 3), "tall.jpg": (300, 17, 3)}
    assert all(f[i][1].dtype == np.uint8 for i in range(len(f)))


def test_corrupt_file_is_named(tmp_path):
    _write(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UnreadableImageError, match="broken.png"):
        ImageFolder(tmp_path)
    f = ImageFolder(tmp_path, skip_unreadable=True)
    assert len(f) == 3 and f.unreadable[0][0].name == "broken.png"


def test_text_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello")
    with pytest.raises(UnreadableImageError, match="notes.png"):
        load_rgb(p)


def test_empty_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no readable images"):
        ImageFolder(tmp_path)
