"""The authors' RFN-Nest checkpoints, converted and fused by occo, reproduce the authors' test path.

Reference data (``reference/<set>/<id>.png``): the fused images the authors' own test routine wrote, computed
outside this repository (github.com/hli1221/imagefusion-rfn-nest at commit 76e4e05: ``test_21pairs.main()``
unchanged but for two shims, scipy.misc's removed imread/imsave replaced by Pillow's and ``.cuda()`` made a
no-op, so it ran on the CPU in float32 with torch 2.14 and numpy 2.4) with the random-init pair of
checkpoints of :mod:`rfn_nest_layout` (seed 0, written with ``torch.save`` in the legacy format) on two
synthetic sets: ``make_synthetic(root, n_train=0, n_test=2, height=240, width=320, seed=0)`` and
``make_synthetic(root, n_train=0, n_test=1, height=75, width=101, seed=1)`` (odd at every scale: the
decoder's padding of the missing row/column). Their test reads both images as Pillow 'L' grey (0..255 floats),
runs encoder -> RFN -> decoder_eval, and writes ``uint8((x - min) / (max - min + 1e-5) * 255)`` per image.
The inputs are regenerated here and checked against the pixel digests their run recorded.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rfn_nest_layout import make_pair, tensor_digest

from occo.cli import main
from occo.data import make_synthetic
from occo.data.color import rgb_to_ycbcr
from occo.data.io import CheckpointError, read_image
from occo.nn import fuse_luminance, load_model
from occo.nn.rfn_nest.published import AUTOENCODER_FILE, RFN_FILE, authors_key, convert_rfn_nest, read_published

HERE = Path(__file__).parent
TENSOR_DIGESTS = (  # tensor_digest of the seed-0 pair, as the reference run recorded them
    "9627261a6dad48b272fae66c9ff4ec04ef806b212ee404d755b712c80d46aa1b",
    "3a7024deeec70cbb9d146cbf4c41f64c870698e43851e99f639dc4d8e68c602b",
)
SETS = {  # make_synthetic arguments; per id the sha256 of the infrared and visible pixels the reference run read
    "synthetic": (
        {"n_test": 2, "height": 240, "width": 320, "seed": 0},
        {
            "syn_000": (
                "bd1362ecddba847079a303ed70a522dddca6d53fb27a05f8e16cb91b0380e0ce",
                "6e6f86f356b18b95bf888054a90e6d177053ffd5796800b3e70787f6497fc1ed",
            ),
            "syn_001": (
                "6e0df0fa9865633b47890fd007153ff8c8bb06bf15f80f42e93a8fd96286b57b",
                "2d1155ea7e99d040bce9f9691f5f2b2035fe9d3d7e9c5798111ef29afd534286",
            ),
        },
    ),
    "synthetic_odd": (
        {"n_test": 1, "height": 75, "width": 101, "seed": 1},
        {
            "syn_000": (
                "a1186ddc040d42719eeaf568f227d0588a3e65bb1998078d44d3471e837cc459",
                "5fc5c8c5d9c2f7f47ec00469982d3affa6411dda4b60c5a998f15dd2026060e1",
            )
        },
    ),
}


def _pixels_sha256(path: Path) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(Image.open(path))).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def authors_files(tmp_path_factory) -> tuple[Path, Path]:
    """The seed-0 pair written as the authors' scripts write theirs (legacy torch format, plain state dicts)."""
    folder = tmp_path_factory.mktemp("authors")
    autoencoder, rfn = make_pair(0)
    assert (tensor_digest(autoencoder), tensor_digest(rfn)) == TENSOR_DIGESTS
    paths = folder / AUTOENCODER_FILE, folder / RFN_FILE
    for state, path in zip((autoencoder, rfn), paths):
        torch.save(state, path, _use_new_zipfile_serialization=False)
    return paths


@pytest.fixture(scope="module")
def converted(authors_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "rfn_nest.pt"
    main(["convert-checkpoint", "--arch", "rfn_nest", str(authors_files[0]), str(authors_files[1]), str(out)])
    return out


@pytest.fixture(scope="module")
def synthetic_sets(tmp_path_factory) -> dict[str, Path]:
    """The two synthetic sets as the reference run read them, and their visible images as Pillow 'L' grey."""
    root = tmp_path_factory.mktemp("sets")
    out = {}
    for name, (args, digests) in SETS.items():
        make_synthetic(root / name, n_train=0, **args)
        test = root / name / "test"
        (test / "vi_grey").mkdir()
        for image_id, (ir_sha, vi_sha) in digests.items():
            assert (
                _pixels_sha256(test / "ir" / f"{image_id}.png"),
                _pixels_sha256(test / "vi" / f"{image_id}.png"),
            ) == (ir_sha, vi_sha)
            Image.open(test / "vi" / f"{image_id}.png").convert("L").save(test / "vi_grey" / f"{image_id}.png")
        out[name] = test
    return out


@pytest.mark.parametrize("name", list(SETS))
def test_occo_fuse_of_the_converted_pair_equals_the_authors_test(name, converted, synthetic_sets, tmp_path):
    """Within 1 grey level (on the CPU with this torch, every pixel is equal)."""
    test = synthetic_sets[name]
    out = tmp_path / "fused"
    main(
        [
            "fuse",
            "--ir",
            str(test / "ir"),
            "--vi",
            str(test / "vi_grey"),
            "--out",
            str(out),
            "--checkpoint",
            str(converted),
            "--device",
            "cpu",
        ]
    )
    for image_id in SETS[name][1]:
        got = np.asarray(Image.open(out / f"{image_id}.png")).astype(int)
        want = np.asarray(Image.open(HERE / "reference" / name / f"{image_id}.png")).astype(int)
        assert got.shape == want.shape and np.abs(got - want).max() <= 1, (image_id, np.abs(got - want).max())
        assert (got != want).mean() < 1e-3, (image_id, int((got != want).sum()))


def test_colour_visible_images_fuse_their_bt601_luminance_within_one_level(converted, synthetic_sets):
    """A colour visible image is fused through its BT.601 Y (float), not the authors' integer 'L': at most half a
    grey level apart at the input, and within 1 at the output."""
    model, _ = load_model(converted)
    test = synthetic_sets["synthetic"]
    for image_id in SETS["synthetic"][1]:
        ir = read_image(test / "ir" / f"{image_id}.png")[None]
        vi = rgb_to_ycbcr(read_image(test / "vi" / f"{image_id}.png"))[:1][None]
        got = (fuse_luminance(model, ir=ir, vi=vi)[0, 0] * 255).round().int().numpy()
        want = np.asarray(Image.open(HERE / "reference" / "synthetic" / f"{image_id}.png")).astype(int)
        assert np.abs(got - want).max() <= 1


def test_the_published_zips_convert_to_the_same_checkpoint(authors_files, converted, tmp_path):
    """The authors publish each file zipped, under the folders their test reads (member found by file name)."""
    zips = tmp_path / "nestfuse.zip", tmp_path / "rfn_twostage.zip"
    for path, member, inner in zip(zips, authors_files, ("nestfuse", "rfn_twostage/6.0")):
        with zipfile.ZipFile(path, "w") as archive:
            archive.write(member, f"{inner}/{member.name}")
    from_zips = convert_rfn_nest(*zips, tmp_path / "from_zips.pt")
    a, b = (torch.load(p, weights_only=True) for p in (converted, from_zips))
    assert (
        a["arch"] == b["arch"] and a["arch"]["name"] == "rfn_nest" and a["arch"]["nest_widths"] == [64, 112, 160, 208]
    )
    assert a["state_dict"].keys() == b["state_dict"].keys() and all(
        torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]
    )
    assert b["source"]["rfn"]["file"] == "rfn_twostage.zip" and len(b["source"]["rfn"]["sha256"]) == 64


def test_every_published_key_maps_onto_the_network(authors_files):
    model, _ = load_model_from(authors_files)
    ours = model.state_dict()
    mapped = [
        authors_key(k)
        for path, member in zip(authors_files, (AUTOENCODER_FILE, RFN_FILE))
        for k in read_published(path, member)
    ]
    assert None not in mapped and sorted(mapped) == sorted(ours) and len(mapped) == 92
    assert sum(v.numel() for v in ours.values()) == 2_732_761 + 4_791_488


def load_model_from(files: tuple[Path, Path]):
    from occo.nn.rfn_nest.published import published_model

    model = published_model(*files)
    return model, model.arch


def test_wrong_files_are_one_line_errors_naming_what_is_wrong(authors_files, tmp_path, capsys):
    autoencoder, rfn = authors_files
    with pytest.raises(CheckpointError, match=r"not a NestFuse auto-encoder of 4 scales \(its keys: fusion_block1"):
        convert_rfn_nest(rfn, autoencoder, tmp_path / "swapped.pt")
    with pytest.raises(CheckpointError, match=r"as the RFN: unmapped keys: DB1_0"):
        convert_rfn_nest(autoencoder, autoencoder, tmp_path / "twice.pt")
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "no model here")
    with pytest.raises(CheckpointError, match=rf"empty\.zip holds no {AUTOENCODER_FILE} \(its \.model files: none\)"):
        convert_rfn_nest(empty, rfn, tmp_path / "x.pt")
    with pytest.raises(SystemExit) as err:
        main(["convert-checkpoint", "--arch", "rfn_nest", str(autoencoder), str(tmp_path / "x.pt")])
    assert "NESTFUSE RFN" in str(err.value) and "give 3 paths" in str(err.value)
    assert not (tmp_path / "x.pt").exists()
