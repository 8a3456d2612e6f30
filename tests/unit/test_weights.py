"""Local weights: resolution, hash checks, strict loading, and the errors a user sees."""

from __future__ import annotations

import hashlib
import shutil
from fractions import Fraction

import pytest
import torch

from harness.errors import WeightsError
from harness.zoo import build_model
from tests.conftest import run_cli


def _save_hash_named(model, folder, name: str):
    tmp = folder / "tmp.pth"
    torch.save(model.state_dict(), tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = folder / f"{name}-{prefix}.pth"
    tmp.rename(path)
    return path


def test_hash_named_checkpoint_round_trips(tmp_path):
    src = build_model("resnet18").eval()
    path = _save_hash_named(src, tmp_path, "resnet18")
    dst = build_model("resnet18", weights=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(src(x), dst(x))


def test_tampered_checkpoint_is_refused_with_both_hashes(tmp_path):
    path = _save_hash_named(build_model("resnet18"), tmp_path, "resnet18")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        build_model("resnet18", weights=str(path))
    message = str(err.value)
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert path.name.split("-")[1][:8] in message


def test_tag_resolves_under_torch_home_and_checks_catalog_hash(torch_home):
    path = _save_hash_named(build_model("resnet18"), torch_home, "resnet18")
    # Under the catalog's file name the hash does not match the published checkpoint: refused.
    shutil.copy(path, torch_home / "resnet18-f37072fd.pth")
    with pytest.raises(WeightsError, match="f37072fd"):
        build_model("resnet18", weights="V1")


def test_missing_weights_say_where_and_what(torch_home):
    with pytest.raises(WeightsError) as err:
        build_model("resnet50", weights="V2")
    message = str(err.value)
    assert str(torch_home / "resnet50-11ad3fa6.pth") in message and "TORCH_HOME" in message
    with pytest.raises(WeightsError, match="has no weights entry 'V2'"):
        build_model("resnet18", weights="V2")


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = _save_hash_named(build_model("resnet18"), tmp_path, "resnet18")
    with pytest.raises(WeightsError) as err:
        build_model("resnet50", weights=str(path))
    message = str(err.value)
    assert "not a resnet50 checkpoint" in message and "missing keys" in message and "layer1.0.conv3.weight" in message


def test_cli_models_lists_catalog_and_local_weights(torch_home):
    path = _save_hash_named(build_model("resnet18"), torch_home, "resnet18")
    path.rename(torch_home / "resnet18-f37072fd.pth")
    result = run_cli("models", env={"TORCH_HOME": str(torch_home.parent.parent)})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "80.858" in lines["resnet50"] and "25.56" in lines["resnet50"]
    assert lines["resnet18"].rstrip().endswith("V1") and lines["resnet34"].rstrip().endswith("-")


def test_cli_check_weights(tmp_path, torch_home):
    path = _save_hash_named(build_model("resnet18"), tmp_path, "resnet18")
    ok = run_cli("check-weights", "resnet18", str(path))
    assert ok.returncode == 0, ok.stderr
    assert "loads strictly" in ok.stdout

    cases = {
        ("resnet51", str(path)): "did you mean resnet50?",
        ("resnet50", "V2"): "resnet50-11ad3fa6.pth",
        ("resnet50", str(path)): "not a resnet50 checkpoint",
        ("resnet18", str(tmp_path / "nope.pth")): "does not exist",
    }
    env = {"TORCH_HOME": str(torch_home.parent.parent)}
    for (model, weights), expected in cases.items():
        result = run_cli("check-weights", model, weights, env=env)
        assert result.returncode == 2, (model, weights, result.stdout, result.stderr)
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


def test_check_weights_says_whether_a_hash_was_verified(tmp_path):
    model = build_model("resnet18")
    hashed = _save_hash_named(model, tmp_path, "resnet18")
    plain = tmp_path / "my-resnet18.pth"
    torch.save(model.state_dict(), plain)
    with_hash = run_cli("check-weights", "resnet18", str(hashed))
    assert with_hash.returncode == 0, with_hash.stderr
    assert "(sha256 prefix in its name verified)" in with_hash.stdout
    without = run_cli("check-weights", "resnet18", str(plain))
    assert without.returncode == 0, without.stderr
    assert "(no hash in its name: integrity not verified)" in without.stdout and "verified)" in without.stdout
    assert "prefix in its name verified" not in without.stdout


def test_digits_that_are_not_torchvisions_hash_form_are_not_taken_for_one(tmp_path):
    src = build_model("resnet18").eval()
    path = tmp_path / "resnet18-epoch-100000.pth"
    torch.save(src.state_dict(), path)
    dst = build_model("resnet18", weights=str(path)).eval()  # 6 digits: not a hash prefix, so nothing to refuse
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(src(x), dst(x))
    # Only -<hex> right before the extension counts: hex digits earlier in the name are not a prefix.
    moved = tmp_path / "resnet18-deadbeef.v2.pth"
    path.rename(moved)
    build_model("resnet18", weights=str(moved))


def test_a_mismatch_on_a_name_of_ones_own_suggests_renaming(tmp_path, torch_home):
    path = tmp_path / "resnet18-run-20240101.pth"  # a date: 8 digits in the hash position
    torch.save(build_model("resnet18").state_dict(), path)
    with pytest.raises(WeightsError, match="if these digits are not a hash prefix, rename the file"):
        build_model("resnet18", weights=str(path))
    shutil.copy(path, torch_home / "resnet18-f37072fd.pth")  # the catalog's name: the file is wrong, not the name
    with pytest.raises(WeightsError) as err:
        build_model("resnet18", weights="V1")
    assert "f37072fd" in str(err.value) and "rename" not in str(err.value)


def test_a_file_that_is_not_a_checkpoint_is_named_as_such_without_torchs_internals(tmp_path):
    csv_file = tmp_path / "some.csv"
    csv_file.write_text("model,infer_samples_per_sec\nresnet50,1000\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    saved = tmp_path / "full.pth"
    torch.save(build_model("resnet18").state_dict(), saved)
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(saved.read_bytes()[:50_000])
    for path, detail in ((csv_file, "is truncated or is not one"), (empty, "is empty"), (truncated, "truncated")):
        result = run_cli("check-weights", "resnet50", str(path))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        message = result.stderr.strip()
        assert message.count("\n") == 0 and str(path) in message, message
        assert "is not a PyTorch checkpoint (a file written by torch.save)" in message and detail in message
        assert "pop from empty list" not in message and "Weights only load failed" not in message
        assert "miniz" not in message and "Unsupported operand" not in message


def test_an_object_a_safe_load_refuses_is_named(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"conv1.weight": torch.ones(1), "extra": Fraction(1, 3)}, path)
    with pytest.raises(WeightsError) as err:
        build_model("resnet18", weights=str(path))
    assert "fractions.Fraction" in str(err.value) and "weights_only=True" in str(err.value)
    assert "refused" in str(err.value) and "unloaded" in str(err.value) and "holds code" not in str(err.value)


class _CallsCode:
    """Pickles as a call to ``os.system`` (``posix.system`` on Linux), the way a malicious checkpoint is made.
    ``torch.save`` only records the call; the tests load it with weights_only=True, which must refuse it unrun."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _malicious_files(tmp_path):
    """Two pickles that would run ``touch SENTINEL`` if unpickled unsafely: a torch.save zip and a bare pickle."""
    import pickle

    sentinel = tmp_path / "ran"
    zipped = tmp_path / "model.pth"  # no hash in the name, so nothing is refused before unpickling
    torch.save({"fc.weight": torch.ones(2, 2), "payload": _CallsCode(f"touch {sentinel}")}, zipped)
    bare = tmp_path / "legacy.pt"
    bare.write_bytes(pickle.dumps(_CallsCode(f"touch {sentinel}"), protocol=2))
    return sentinel, [zipped, bare]


def _assert_refused_as_code(message: str, path) -> None:
    assert str(path) in message and "posix.system" in message, message
    assert "refused" in message and "unloaded" in message and "holds code" in message, message
    assert "weights_only=True" in message, message
    assert "not a PyTorch checkpoint" not in message and "truncated" not in message, message
    assert "Weights only load failed" not in message and "\n" not in message.strip(), message


def test_a_pickle_that_calls_code_is_refused_unloaded_as_code(tmp_path):
    sentinel, files = _malicious_files(tmp_path)
    for path in files:
        with pytest.raises(WeightsError) as err:
            build_model("resnet18", weights=str(path))
        _assert_refused_as_code(str(err.value), path)
        result = run_cli("check-weights", "resnet18", str(path))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        _assert_refused_as_code(result.stderr, path)
    assert not sentinel.exists()  # nothing in the files ran


@pytest.mark.parametrize(
    "wording",
    [
        # the wording of torch 2.13 (here), which blocks os/posix/sys/nt outright
        "Trying to load unsupported GLOBAL posix.system whose module posix is blocked.",
        # the older wording, the same for every global that is not allowed
        "Unsupported global: GLOBAL posix.system was not an allowed global by default. Please use "
        "`torch.serialization.add_safe_globals([posix.system])` to allowlist this global if you trust this class.",
    ],
)
def test_either_torch_wording_of_a_blocked_call_is_refused_as_code(tmp_path, monkeypatch, wording):
    import pickle

    path = tmp_path / "model.pth"
    torch.save(build_model("resnet18").state_dict(), path)

    def refuse(*args, **kwargs):
        assert kwargs.get("weights_only") is True
        raise pickle.UnpicklingError(
            f"Weights only load failed. Re-running `torch.load` ...\n\n\n{wording}\n\nCheck ..."
        )

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(WeightsError) as err:
        build_model("resnet18", weights=str(path))
    _assert_refused_as_code(str(err.value), path)
