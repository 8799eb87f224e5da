"""Write photo.jpg and other.png into a folder (default: here) for the README's quickstart.

photo.jpg is the photograph of Grace Hopper (US Navy, public domain) and other.png an unrelated clip-art present,
both from matplotlib's sample data, which `make` installs. Give a photo of your own to use it instead:
    .venv/bin/python scripts/sample_photos.py [FOLDER] [--photo PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def sample_photos(folder: Path, photo: Path | None = None) -> None:
    from matplotlib import cbook
    from PIL import Image

    source = photo or Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    Image.open(source).convert("RGB").save(folder / "photo.jpg", quality=92)
    other = Path(cbook.get_sample_data("Minduka_Present_Blue_Pack.png", asfileobj=False))
    (folder / "other.png").write_bytes(other.read_bytes())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--photo", type=Path, help="Use this photo (any format Pillow reads) as photo.jpg.")
    args = parser.parse_args()
    sample_photos(args.folder, args.photo)
    print(f"wrote {args.folder / 'photo.jpg'} and {args.folder / 'other.png'}")
