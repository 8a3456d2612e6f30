"""Accuracy end to end on a generated class-folder set and a checkpoint whose predictions are known.

The data set holds solid-colour images, one colour per class. Any size of a solid image preprocesses to the
same constant tensor, so the test works out the network's input for each class by hand, and then sets the fc
layer of a seeded resnet18 (by least squares on the pooled features of those inputs) so that class ``c``'s
logits rank ``c`` first, ``c + 1`` second, ... and ``c - 1`` last. Every expected accuracy follows from that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from harness.accuracy import IMAGENET_MEAN, IMAGENET_STD, accuracy_for_case, evaluate, wilson_interval
from harness.errors import HarnessError, WeightsError
from harness.zoo import build_model, catalog

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 50, 210), (230, 220, 40), (30, 210, 220), (200, 40, 210)]
K = len(COLOURS)
SIZES = [(80, 64), (64, 100), (120, 90)]  # (width, height), one image of each per class


def save_hash_named(state_dict: dict, folder: Path, model: str) -> Path:
    """Save a state_dict as ``<model>-<sha256[:8]>.pth``, the naming the weights loader checks."""
    tmp = folder / "tmp.pth"
    torch.save(state_dict, tmp)
    path = folder / f"{model}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(path)
    return path


def _ranked_model(seed: int):
    torch.manual_seed(seed)
    model = build_model("resnet18", num_classes=K).eval()
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    inputs = torch.stack([(torch.tensor(c).view(3, 1, 1) / 255 - mean) / std for c in COLOURS])
    inputs = inputs.expand(K, 3, 224, 224).contiguous()
    features = []
    hook = model.fc.register_forward_hook(lambda _m, args, _out: features.append(args[0]))
    with torch.no_grad():
        model(inputs)
    hook.remove()
    feats = features[0].double()
    target = torch.tensor([[10.0 * (K - (j - c) % K) for j in range(K)] for c in range(K)], dtype=torch.float64)
    weight = torch.linalg.lstsq(feats, target).solution.T
    with torch.no_grad():
        model.fc.weight.copy_(weight.float())
        model.fc.bias.zero_()
        logits = model(inputs)
    return model, logits


def ranked_checkpoint(folder: Path) -> Path:
    """A 6-class resnet18 checkpoint whose logits for colour ``c`` rank the classes c, c+1, ..., c-1.

    The fit is checked with a fresh forward: each class's logits must come out in the constructed order with gaps
    of at least 2 (of the 10 asked for), so rounding in the preprocessing cannot flip a rank. A seed whose random
    features do not allow that is passed over for the next.
    """
    expected = torch.tensor([[(c + r) % K for r in range(K)] for c in range(K)])
    for seed in range(5):
        model, logits = _ranked_model(seed)
        ordered, order = logits.sort(dim=1, descending=True)
        gaps = ordered[:, :-1] - ordered[:, 1:]
        if torch.equal(order, expected) and float(gaps.min()) >= 2.0:
            return save_hash_named(model.state_dict(), folder, "resnet18")
    raise AssertionError(f"no seed gave a checkpoint that ranks classes as constructed (last order: {order})")


def make_class_folders(root: Path, corrupt: bool = True) -> list[tuple[str, int]]:
    """K class folders of solid-colour PNG/JPEG images; with ``corrupt``, two unreadable .jpg files in class 0.

    Returns the (relative path, true class) of every readable image.
    """
    good = []
    for c, colour in enumerate(COLOURS):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True)
        for i, size in enumerate(SIZES):
            name = f"img{i}.jpg" if i == 2 else f"img{i}.png"
            Image.new("RGB", size, colour).save(folder / name, quality=95)
            good.append((f"class_{c:02d}/{name}", c))
    (root / "class_00" / "README.txt").write_text("not an image, and not named like one: ignored")
    if corrupt:
        noise = Image.frombytes("RGB", (96, 96), random.Random(0).randbytes(96 * 96 * 3))
        noise.save(root / "class_00" / "truncated.jpg", quality=95)
        data = (root / "class_00" / "truncated.jpg").read_bytes()
        (root / "class_00" / "truncated.jpg").write_bytes(data[: len(data) // 2])
        (root / "class_00" / "notes.jpg").write_text("a text file with an image's name")
    return good


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return ranked_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("data")
    return root, make_class_folders(root)


def _eval(ckpt, root, **kw):
    opts = {"batch_size": 4, "workers": 0, "device": "cpu", "progress": False} | kw
    return evaluate("resnet18", str(ckpt), root, **opts)


def test_known_model_scores_100_and_reports_corrupt_files(ckpt, data):
    root, good = data
    r = _eval(ckpt, root)
    assert r["acc1"] == 100.0 and r["acc5"] == 100.0
    assert r["images"] == len(good) == 18
    assert r["skipped"] == 2 and r["total_images"] == 20
    reasons = {Path(s["path"]).name: s["reason"] for s in r["skipped_files"]}
    assert set(reasons) == {"truncated.jpg", "notes.jpg"}
    assert "truncated" in reasons["truncated.jpg"] and "cannot identify" in reasons["notes.jpg"]
    lo, hi = r["acc1_ci95"]
    assert hi == 100.0 and 80 < lo < 90  # Wilson at 18/18: about [82.4, 100]
    # An unpublished checkpoint: the best entry's recipe (resnet18 V1: resize 256), no stated values.
    assert r["recipe"] == {"resize": 256, "crop": 224} and "not a published resnet18" in r["recipe_from"]
    assert r["weights_tag"] is None and r["stated_acc1"] is None and r["acc1_delta"] is None
    assert r["num_classes"] == K and r["precision"] == "fp32" and r["channels_last"] is False


def test_shuffled_labels_give_the_accuracy_the_shuffle_implies(ckpt, data, tmp_path):
    root, good = data
    rng = random.Random(3)
    lines, expect1, expect5 = [], 0, 0
    for rel, true in good:
        label = rng.randrange(K)
        lines.append(f"{rel}\t{label}" if rng.random() < 0.5 else f"{rel}   {label}")
        expect1 += label == true
        expect5 += label != (true - 1) % K  # the model ranks true - 1 last, so only that label misses top-5
    lines.append("class_00/truncated.jpg 0")
    lines.append("class_09/gone.png 3")
    labels = tmp_path / "labels.txt"
    labels.write_text("# path class\n\n" + "\n".join(lines) + "\n")
    r = _eval(ckpt, root, labels_file=labels)
    assert 0 < expect1 < len(good) and expect5 < len(good)  # the shuffle does change the answer
    assert r["acc1"] == pytest.approx(100 * expect1 / len(good), abs=1e-3)
    assert r["acc5"] == pytest.approx(100 * expect5 / len(good), abs=1e-3)
    assert r["images"] == len(good) and r["skipped"] == 2
    assert any("not found" in s["reason"] for s in r["skipped_files"])


def test_limit_draws_a_seeded_subset(ckpt, data):
    root, _ = data
    a, b = _eval(ckpt, root, limit=7, seed=1), _eval(ckpt, root, limit=7, seed=1)
    assert a["subset"] is True and a["selected"] == 7 and a["limit"] == 7
    assert a["images"] + a["skipped"] == 7 and a["images"] == b["images"] and a["skipped_files"] == b["skipped_files"]
    assert a["acc1"] == 100.0


def test_channels_last_and_bf16_keep_the_predictions(ckpt, data):
    root, _ = data
    r = _eval(ckpt, root, precision="amp_bf16", channels_last=True)
    assert r["acc1"] == 100.0 and r["precision"] == "amp_bf16" and r["channels_last"] is True


def test_loader_workers_carry_skipped_markers(ckpt, data):
    root, _ = data
    r = _eval(ckpt, root, workers=2)
    assert r["images"] == 18 and r["skipped"] == 2 and r["acc1"] == 100.0


def test_folder_class_count_must_match_the_model(ckpt, tmp_path):
    for c in range(3):
        (tmp_path / f"c{c}").mkdir()
        Image.new("RGB", (64, 64), COLOURS[c]).save(tmp_path / f"c{c}" / "a.png")
    with pytest.raises(HarnessError) as err:
        _eval(ckpt, tmp_path)
    message = str(err.value)
    assert "3 class folders" in message and f"{K} outputs" in message and "--labels" in message


def test_missing_empty_and_flat_folders(ckpt, tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        _eval(ckpt, tmp_path / "nowhere")
    with pytest.raises(HarnessError, match="is empty"):
        _eval(ckpt, tmp_path)
    Image.new("RGB", (64, 64)).save(tmp_path / "loose.png")
    with pytest.raises(HarnessError, match="no class folders .*--labels"):
        _eval(ckpt, tmp_path)
    (tmp_path / "loose.png").unlink()
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(HarnessError, match="no image files"):
        _eval(ckpt, tmp_path)


def test_bad_labels_files(ckpt, data, tmp_path):
    root, _ = data
    bad = tmp_path / "bad.txt"
    bad.write_text("class_00/img0.png 0\nclass_00/img1.png\n")
    with pytest.raises(HarnessError, match=r"bad.txt:2: expected"):
        _eval(ckpt, root, labels_file=bad)
    bad.write_text(f"class_00/img0.png {K}\n")
    with pytest.raises(HarnessError, match=rf"labels outside 0..{K - 1}"):
        _eval(ckpt, root, labels_file=bad)
    bad.write_text("elsewhere/a.png 0\n")
    with pytest.raises(HarnessError, match="none of the 1 files"):
        _eval(ckpt, root, labels_file=bad)


@pytest.fixture
def published(ckpt, monkeypatch):
    """Make the test checkpoint resnet18's only catalog entry, with stated values and the V2-style 232 resize."""
    entry = catalog.get_entry("resnet18")
    stated = catalog.WeightsEntry("IMAGENET1K_V1", ckpt.name, 97.5, 99.9, 44.7, 224, 232)
    monkeypatch.setitem(catalog.CATALOG, "resnet18", dataclasses.replace(entry, weights=(stated,)))
    return stated


def test_published_entry_by_path_tag_and_hash(ckpt, data, published, torch_home, tmp_path):
    root, _ = data
    by_name = _eval(ckpt, root)
    assert by_name["weights_tag"] == "IMAGENET1K_V1" and "matched by file name" in by_name["recipe_from"]
    assert by_name["recipe"] == {"resize": 232, "crop": 224}
    assert by_name["stated_acc1"] == 97.5 and by_name["acc1_delta"] == pytest.approx(2.5)
    assert by_name["acc5_delta"] == pytest.approx(0.1) and by_name["acc1_stated_in_ci95"] is True
    shutil.copy(ckpt, torch_home / ckpt.name)
    by_tag = _eval("V1", root, limit=4)
    assert by_tag["weights_path"] == str(torch_home / ckpt.name) and "named by tag" in by_tag["recipe_from"]
    renamed = tmp_path / "my-copy.pth"
    shutil.copy(ckpt, renamed)
    by_hash = _eval(renamed, root, limit=4)
    assert by_hash["weights_tag"] == "IMAGENET1K_V1" and f"sha256 prefix {ckpt.name[9:17]}" in by_hash["recipe_from"]
    assert by_name["acc1"] == by_tag["acc1"] == by_hash["acc1"] == 100.0


def test_a_file_named_like_the_published_one_is_refused(data, tmp_path):
    root, _ = data
    fake = tmp_path / "resnet18-f37072fd.pth"
    torch.save(build_model("resnet18").state_dict(), fake)
    with pytest.raises(WeightsError, match="f37072fd"):
        _eval(fake, root)


def test_weights_of_another_model_are_refused(ckpt, data):
    root, _ = data
    with pytest.raises(WeightsError, match="not a resnet34 checkpoint"):
        evaluate("resnet34", str(ckpt), root, workers=0, device="cpu", progress=False)


def test_accuracy_for_case(ckpt, data):
    root, _ = data
    case = SimpleNamespace(
        model="resnet18", weights=None, precision="fp32", channels_last=False, device="cpu", batch_size=2
    )
    assert accuracy_for_case(case, root, None) == {
        "error": "no weights: accuracy needs a checkpoint (set weights: V1|V2|path in the suite)"
    }
    case.weights = str(ckpt)
    record = accuracy_for_case(case, root, 10)
    assert record["acc1"] == 100.0 and record["images"] + record["skipped"] == 10 and record["limit"] == 10
    assert record["acc1_ci95"][1] == 100.0 and record["stated_acc1"] is None
    case.precision = "tf32"  # CUDA only: returned as data, not raised
    assert "tf32 is a CUDA tensor-core mode" in accuracy_for_case(case, root, 10)["error"]
    assert "does not exist" in accuracy_for_case(case, root / "nowhere", 10)["error"]


def make_folders_with_leftovers(root: Path) -> None:
    """Class folders (no corrupt images) with what an evaluation leaves out: 7 non-image files, of them one at the
    top level, and one class folder (the last, class_05) without images, whose index the sorted names still take."""
    make_class_folders(root, corrupt=False)  # class_00/README.txt is the first non-image file
    for name in ("LOC_val_solution.csv", "class_01/Thumbs.db", "class_02/sub/notes.md", "class_03/a.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("not an image")
    for path in (root / "class_05").iterdir():
        path.unlink()
    (root / "class_05" / "img0.png.bak").write_text("a backup, not an image")
    (root / "class_05" / ".DS_Store").write_bytes(b"\0")


def test_non_image_files_and_empty_class_folders_are_said(ckpt, tmp_path):
    make_folders_with_leftovers(tmp_path)
    with pytest.warns(UserWarning) as caught:
        r = _eval(ckpt, tmp_path)
    assert r["acc1"] == 100.0 and r["images"] == 15 and r["skipped"] == 0  # the other 5 classes, 3 images each
    assert r["ignored_files"] == 7 and r["empty_classes"] == ["class_05"]
    assert r["ignored_examples"][:2] == ["LOC_val_solution.csv", "class_00/README.txt"]
    assert len(r["ignored_examples"]) == 5 and len(r["notes"]) == 2
    said = [str(w.message) for w in caught]
    ignored = next(m for m in said if "non-image" in m)
    assert "ignored 7 non-image files" in ignored and "class_00/README.txt" in ignored and "and 2 more" in ignored
    assert str(tmp_path) in ignored and ".jpg" in ignored
    empty = next(m for m in said if "empty class folder" in m)
    assert "1 empty class folder (class_05)" in empty and "no image to evaluate" in empty
    # A clean folder says nothing of the kind.
    clean = tmp_path / "clean"
    make_class_folders(clean, corrupt=False)
    (clean / "class_00" / "README.txt").unlink()
    r = _eval(ckpt, clean)
    assert r["ignored_files"] == 0 and r["empty_classes"] == [] and r["notes"] == []


@pytest.mark.parametrize(
    "k,n,lo,hi",
    [(50, 100, 0.4038, 0.5962), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (95, 100, 0.8882, 0.9785)],
)
def test_wilson_interval_known_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-4)
