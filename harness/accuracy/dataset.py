"""An ImageNet-style evaluation set on disk: class folders or a labels file, decoded with Pillow.

Class folders follow torchvision's ImageFolder: every sub-folder of the data folder is a class, and the sorted
folder names give the class indices (ImageNet's ``n01440764`` ... ``n15075141`` sort into the published order).
A labels file instead lists ``relative/path.jpg class_index`` per line (tab or spaces), for a flat validation
folder. A file that cannot be decoded is not dropped silently: the data set returns a ``Skipped`` marker,
``collate`` sets it aside, and the evaluation counts and reports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.accuracy.preprocess import Recipe, preprocess
from harness.errors import HarnessError

#: Extensions read as images, compared case-insensitively (torchvision's ImageFolder list).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
#: Non-image files and empty class folders named in the evaluation's notes (the rest are counted).
IGNORED_LISTED = 5


@dataclass(frozen=True)
class Samples:
    """What was found on disk: (path, class index) pairs, the class count, and files listed but absent."""

    items: list[tuple[str, int]]
    num_classes: int | None  # class folders found; None for a labels file
    classes: list[str]  # the class folders' names in index order (empty for a labels file)
    missing: list[str]  # listed in the labels file but not on disk
    source: str  # "class folders" or the labels file's path
    ignored: int = 0  # files under the data folder that are not images by their extension (not read)
    ignored_examples: tuple[str, ...] = ()  # the first few of them, as paths relative to the data folder
    empty_classes: tuple[str, ...] = ()  # class folders without an image file (they still take a class index)

    def notes(self) -> list[str]:
        """One line for each thing found on disk that the evaluation leaves out: non-image files, empty classes."""
        lines = []
        if self.ignored:
            more = (
                f" and {self.ignored - len(self.ignored_examples)} more"
                if self.ignored > len(self.ignored_examples)
                else ""
            )
            lines.append(
                f"ignored {self.ignored} non-image file{'s' if self.ignored != 1 else ''} under the data folder "
                f"({', '.join(self.ignored_examples)}{more}); images are read by extension: {', '.join(IMG_EXTENSIONS)}"
            )
        if self.empty_classes:
            n = len(self.empty_classes)
            shown = ", ".join(self.empty_classes[:IGNORED_LISTED])
            more = f" and {n - IGNORED_LISTED} more" if n > IGNORED_LISTED else ""
            lines.append(
                f"{n} empty class folder{'s' if n != 1 else ''} ({shown}{more}): counted as "
                f"{'classes' if n != 1 else 'a class'}, so the sorted names keep their indices, "
                "but with no image to evaluate"
            )
        return lines


@dataclass(frozen=True)
class Skipped:
    """An image that could not be read: its path and why."""

    path: str
    reason: str


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _check_folder(data_dir: Path) -> None:
    if not data_dir.exists():
        raise HarnessError(f"data folder {str(data_dir)!r} does not exist; pass --data with an ImageNet-style folder")
    if not data_dir.is_dir():
        raise HarnessError(f"data folder {str(data_dir)!r} is a file, not a folder of class folders")


def find_class_folders(data_dir: str | os.PathLike) -> Samples:
    """Every image under each class folder of ``data_dir``, labelled by the folder's index in sorted order.

    Sub-folders of a class folder are searched too (as ImageFolder does). Raises a HarnessError for a folder
    that does not exist, is empty, has no class folders, or whose class folders hold no image files.
    """
    root = Path(data_dir).expanduser()
    _check_folder(root)
    entries = list(os.scandir(root))
    if not entries:
        raise HarnessError(
            f"data folder {str(root)!r} is empty: it must hold one sub-folder of images per class "
            "(ImageNet validation: 1000 folders n01440764 ... n15075141), or pass --labels FILE"
        )
    classes = sorted(e.name for e in entries if e.is_dir())
    if not classes:
        loose = sum(1 for e in entries if e.is_file() and _is_image(e.name))
        raise HarnessError(
            f"data folder {str(root)!r} has no class folders ({loose} image files at its top level): a flat "
            "validation folder needs --labels FILE with one 'relative/path.jpg class_index' line per image"
        )
    items: list[tuple[str, int]] = []
    # Files at the top level are not in any class: left out like the non-image files inside class folders.
    ignored = sorted(e.name for e in entries if not e.is_dir())
    empty: list[str] = []
    for index, name in enumerate(classes):
        before = len(items)
        for dirpath, _, files in sorted(os.walk(root / name, followlinks=True)):
            for f in sorted(files):
                if _is_image(f):
                    items.append((os.path.join(dirpath, f), index))
                else:
                    ignored.append(os.path.relpath(os.path.join(dirpath, f), root))
        if len(items) == before:
            empty.append(name)
    if not items:
        raise HarnessError(
            f"data folder {str(root)!r} has {len(classes)} class folders but no image files in them "
            f"(read: {', '.join(IMG_EXTENSIONS)})"
        )
    return Samples(
        items,
        len(classes),
        classes,
        [],
        "class folders",
        ignored=len(ignored),
        ignored_examples=tuple(ignored[:IGNORED_LISTED]),
        empty_classes=tuple(empty),
    )


def read_labels_file(data_dir: str | os.PathLike, labels_file: str | os.PathLike) -> Samples:
    """The images a labels file lists (``path<TAB or spaces>class_index`` per line, paths relative to ``data_dir``).

    Blank lines and lines starting with ``#`` are ignored; the last field is the index, so paths may hold
    spaces. A malformed line is an error naming the file and the line; listed files that are not on disk are
    returned in ``missing`` (the evaluation reports them as skipped); none on disk at all is an error.
    """
    root = Path(data_dir).expanduser()
    _check_folder(root)
    labels_path = Path(labels_file).expanduser()
    if not labels_path.is_file():
        raise HarnessError(f"labels file {str(labels_path)!r} does not exist")
    items, missing = [], []
    with open(labels_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.rsplit(None, 1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise HarnessError(
                    f"{labels_path}:{number}: expected 'relative/path.jpg class_index', got {text[:80]!r}"
                )
            path = str(root / parts[0].strip())
            (items if os.path.isfile(path) else missing).append((path, int(parts[1])))
    if not items:
        if missing:
            raise HarnessError(
                f"none of the {len(missing)} files listed in {labels_path} exist under {str(root)!r} "
                f"(first: {missing[0][0]}); paths in a labels file are relative to --data"
            )
        raise HarnessError(f"labels file {str(labels_path)!r} lists no images")
    return Samples(items, None, [], [p for p, _ in missing], str(labels_path))


def find_samples(data_dir: str | os.PathLike, labels_file: str | os.PathLike | None = None) -> Samples:
    """Class folders under ``data_dir``, or the labels file's listing when one is given."""
    return read_labels_file(data_dir, labels_file) if labels_file else find_class_folders(data_dir)


class ImageDataset:
    """A map-style data set of preprocessed images: item ``i`` is ``(tensor, label)`` or a ``Skipped`` marker.

    Decoding errors of every kind (not an image, truncated, unsupported mode) become markers, so one bad file
    neither stops the evaluation nor vanishes from the count.
    """

    def __init__(self, items: list[tuple[str, int]], recipe: Recipe) -> None:
        self.items = items
        self.recipe = recipe

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        from PIL import Image

        path, label = self.items[index]
        try:
            with Image.open(path) as img:
                return preprocess(img, self.recipe), label
        except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, DecompressionBombError ...
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Skipped(path, reason)


def collate(batch: list):
    """Stack the readable images of a batch; returns ``(images or None, labels or None, [Skipped, ...])``."""
    import torch

    good = [item for item in batch if not isinstance(item, Skipped)]
    skipped = [item for item in batch if isinstance(item, Skipped)]
    if not good:
        return None, None, skipped
    images = torch.stack([image for image, _ in good])
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    return images, labels, skipped
