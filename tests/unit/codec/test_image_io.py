import numpy as np
import pytest
from PIL import Image

from codec.image_io import ImageFolder, UnreadableImageError, load_rgb


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


def _png_header_only(path, w, h):
    """A PNG whose header claims ``w``×``h`` (no real pixel data)."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2,
                                                                        0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return path


def test_huge_images_are_refused_from_the_header(tmp_path):
    bomb = _png_header_only(tmp_path / "bomb.png", 30000, 30000)  # beyond Pillow's limit
    with pytest.raises(UnreadableImageError, match="bomb.png: above Pillow's pixel limit"):
        load_rgb(bomb)
    big = _png_header_only(tmp_path / "big.png", 9000, 8000)  # under Pillow's, over ours
    with pytest.raises(UnreadableImageError, match=r"big.png: 9000×8000 is 72000000 pixels, "
                                                   r"above the limit of 67108864"):
        load_rgb(big)


def test_cli_encode_bad_inputs_give_one_line_and_exit_2(tmp_path, capsys):
    from PIL import Image

    from experiments.cli import main

    Image.new("RGB", (1, 7)).save(tmp_path / "tiny.png")
    _png_header_only(tmp_path / "bomb.png", 30000, 30000)
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    for name in ("tiny.png", "bomb.png", "junk.jpg"):
        assert main(["encode", str(tmp_path / name), "-o", str(tmp_path / "x.sdg")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and name in err[0] and err[0].startswith("sdgic encode: error:")
        assert not (tmp_path / "x.sdg").exists()
