"""The zoo against its stated metadata and against torchvision's architecture, model by model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from harness.errors import UnknownModelError
from harness.measure.ops import count_ops
from harness.zoo import CATALOG, MODEL_NAMES, build_model, get_entry

ALL = list(MODEL_NAMES)
ROOT = Path(__file__).resolve().parents[2]


def test_catalog_lists_the_whole_family():
    assert ALL == [
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnext50_32x4d",
        "resnext101_32x8d",
        "resnext101_64x4d",
        "wide_resnet50_2",
        "wide_resnet101_2",
    ]


def test_resnet50_v2_entry_matches_published_metadata():
    m = get_entry("resnet50")
    w = m.weights_entry("V2")
    assert (m.num_params, m.gmacs) == (25_557_032, 4.089)
    assert (w.acc1, w.acc5, w.file_size_mb, w.crop_size, w.resize_size) == (80.858, 95.434, 97.79, 224, 232)
    assert w.file_name == "resnet50-11ad3fa6.pth" and w.sha256_prefix == "11ad3fa6"
    assert m.weights_entry("IMAGENET1K_V1").resize_size == 256


def test_stated_metadata_against_built_models():
    """Every model's parameter count, op count, output shape and key names; all failures reported together."""
    failures = []
    for name in ALL:
        entry = CATALOG[name]
        with torch.device("meta"):
            model = build_model(name)
        params = sum(p.numel() for p in model.parameters())
        if params != entry.num_params:
            failures.append(f"{name}: {params} params, stated {entry.num_params}")
        ops = count_ops(name, 224)
        if abs(ops.macs_per_img / 1e9 / entry.gmacs - 1) > 0.0005:
            failures.append(f"{name}: {ops.macs_per_img / 1e9:.4f} GMACs, stated {entry.gmacs}")
        out = model(torch.empty(2, 3, 224, 224, device="meta"))
        if tuple(out.shape) != (2, 1000):
            failures.append(f"{name}: output shape {tuple(out.shape)}")
        keys = set(model.state_dict())
        for key in (
            "conv1.weight",
            "bn1.running_mean",
            "layer1.0.conv1.weight",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.num_batches_tracked",
            "layer4.1.bn2.weight",
            "fc.weight",
            "fc.bias",
        ):
            if key not in keys:
                failures.append(f"{name}: no {key} in state_dict")
    assert not failures, "\n".join(failures)


def _reference_forward(sd: dict, x: torch.Tensor, bottleneck: bool, groups: int) -> torch.Tensor:
    """torchvision's ResNet forward written out with functional ops over a state_dict's names (eval mode)."""

    def bn(t, p):
        return F.batch_norm(
            t,
            sd[f"{p}.running_mean"],
            sd[f"{p}.running_var"],
            sd[f"{p}.weight"],
            sd[f"{p}.bias"],
            training=False,
            eps=1e-5,
        )

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1")), 3, 2, 1)
    for layer in range(1, 5):
        block = 0
        while f"layer{layer}.{block}.conv1.weight" in sd:
            p = f"layer{layer}.{block}"
            stride = 2 if (layer > 1 and block == 0) else 1
            identity = x
            if f"{p}.downsample.0.weight" in sd:
                identity = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            if bottleneck:
                out = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
                out = F.relu(
                    bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1, groups=groups), f"{p}.bn2")
                )
                out = bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            else:
                out = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
                out = bn(F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            x = F.relu(out + identity)
            block += 1
    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return F.linear(x, sd["fc.weight"], sd["fc.bias"])


@pytest.mark.parametrize(("name", "bottleneck", "groups"), [("resnet18", False, 1), ("resnext50_32x4d", True, 32)])
def test_outputs_match_torchvision_architecture(name, bottleneck, groups):
    torch.manual_seed(0)
    model = build_model(name).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a mis-wired BN would show
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = model(x)
        ref = _reference_forward(model.state_dict(), x, bottleneck, groups)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_constructor_surface():
    m = build_model(
        "resnet50", num_classes=10, zero_init_residual=True, replace_stride_with_dilation=[False, True, True]
    )
    assert m.fc.out_features == 10
    assert float(m.layer1[0].bn3.weight.detach().abs().sum()) == 0.0
    out = m.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 10)
    assert m.layer4[0].conv2.dilation == (2, 2) and m.layer4[1].conv2.dilation == (4, 4)
    with pytest.raises(ValueError, match="replace_stride_with_dilation"):
        build_model("resnet50", replace_stride_with_dilation=[True])
    with pytest.raises(ValueError, match="groups"):
        build_model("resnext50_32x4d", groups=8)


def test_unknown_model_suggests_closest():
    with pytest.raises(UnknownModelError) as err:
        build_model("resnet51")
    message = str(err.value)
    assert "did you mean resnet50?" in message and "wide_resnet101_2" in message


def test_training_flops_are_three_forwards_less_the_stem_for_every_model():
    """A training step costs about three forwards; grouped convolutions (ResNeXt) must not be overcounted."""
    failures = []
    for name in ALL:
        ratio = count_ops(name, 224, "train").flops_per_img / count_ops(name, 224).flops_per_img
        if not 2.9 < ratio < 3.0:
            failures.append(f"{name}: train/inference FLOPs = {ratio:.2f}")
    assert not failures, "\n".join(failures)


def test_catalog_and_models_command_import_no_torch():
    """The spec is what the report, the suite checks and ``harness models`` read: it must not pull torch in."""
    code = (
        "import sys, harness.zoo.catalog, harness.zoo.weights, harness.commands.models; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_built_models_have_the_architecture_their_entry_states():
    """Blocks per stage, block type, groups and the inner width come from the catalog entry, model by model."""
    from harness.zoo.catalog import bottleneck_width
    from harness.zoo.resnet import BLOCKS, builder

    failures = []
    for name in ALL:
        entry = get_entry(name)
        build = builder(entry)
        with torch.device("meta"):
            model = build()
        if build.__name__ != name:
            failures.append(f"{name}: builder named {build.__name__}")
        stages = [getattr(model, f"layer{i}") for i in range(1, 5)]
        if tuple(len(s) for s in stages) != entry.layers:
            failures.append(f"{name}: stages {[len(s) for s in stages]}, stated {entry.layers}")
        first = stages[0][0]
        if type(first) is not BLOCKS[entry.block]:
            failures.append(f"{name}: {type(first).__name__} blocks, stated {entry.block}")
        if entry.block == "bottleneck":
            width = bottleneck_width(64, entry.groups, entry.width_per_group)
            if (first.conv2.groups, first.conv2.out_channels) != (entry.groups, width):
                failures.append(f"{name}: conv2 groups/width {first.conv2.groups}/{first.conv2.out_channels}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("resolution", [64, 160, 176, 224, 288])
def test_spec_counts_the_forward_macs_the_op_counter_measures(resolution):
    """The catalog's analytic count equals the harness's op counter on the built model, so the stated figure is
    carried to every resolution exactly: ``ops_deviation`` reads there what it reads at 224 px, which is only the
    rounding of the stated ``_ops`` (three decimals: 4.23 for resnext50_32x4d's 4.2305, +0.0113%)."""
    failures = []
    for name in ALL:
        entry = get_entry(name)
        counted = count_ops(name, resolution)
        if counted.macs_per_img != entry.forward_macs(resolution):
            failures.append(f"{name}: counted {counted.macs_per_img:.0f} MACs, spec {entry.forward_macs(resolution)}")
        if abs(counted.ops_deviation - count_ops(name, 224).ops_deviation) > 1e-9:
            failures.append(f"{name}: ops_deviation {counted.ops_deviation:+.4%} at {resolution} px")
        if abs(counted.ops_deviation) > 0.0005 / entry.gmacs:  # half a unit in the stated figure's last digit
            failures.append(f"{name}: ops_deviation {counted.ops_deviation:+.4%}, beyond the rounding of _ops")
    assert not failures, "\n".join(failures)
    assert all(get_entry(name).stated_gmacs(224) == get_entry(name).gmacs for name in ALL)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"])
@pytest.mark.parametrize("resolution", [64, 97])
def test_spec_counts_the_feature_maps_a_forward_pass_makes(name, resolution):
    """``feature_elements``: what the built model's convolutions, max pool and fc layer output per image, element
    for element (the memory a training case needs for its backward pass grows with it)."""
    model = build_model(name).eval()
    made = []
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.Linear)):
            module.register_forward_hook(lambda m, args, out: made.append(out.numel()))
    with torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    assert get_entry(name).feature_elements(resolution) == sum(made)
