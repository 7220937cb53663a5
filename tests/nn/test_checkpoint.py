import errno
import io
import os
from pathlib import Path

import pytest
import torch

from occo.config import Arch, as_dict
from occo.nn import CheckpointError, build_model, convert_checkpoint, fuse_y, load_model, save_checkpoint
from support import PicklePayload

# Our names -> the attribute names of the public models/net.py (class occo): encoders v1..v4 (visible)
# and i1..i4 (infrared) with Sequential Conv_BN_ReLU_2 (conv 0, BN 1, conv 3, BN 4), Attention_fusion
# fusion1..fusion4, unetUp up_concat3 (deepest) .. up_concat1, and the 1x1 conv final.
ENCODER = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4"}
FUSION = {
    "channel.fc1": "channel_weight.mlp.0",
    "channel.fc2": "channel_weight.mlp.2",
    "spatial.vi.conv1": "space_weight1.mlp.0",
    "spatial.vi.conv2": "space_weight1.mlp.2",
    "spatial.ir.conv1": "space_weight2.mlp.0",
    "spatial.ir.conv2": "space_weight2.mlp.2",
    "cross.proj_vi": "cross.channel_proj3",
    "cross.proj_ir": "cross.channel_proj4",
    "cross.kv_vi": "cross.cross_attn.kv1",
    "cross.kv_ir": "cross.cross_attn.kv2",
    "merge_vi.proj": "cross.end_proj1",
    "merge_ir.proj": "cross.end_proj2",
    "merge_vi.norm": "cross.norm1",
    "merge_ir.norm": "cross.norm2",
    "embed.skip": "channel_emb.residual",
    "embed.conv_in": "channel_emb.channel_embed.0",
    "embed.dwconv": "channel_emb.channel_embed.1",
    "embed.conv_out": "channel_emb.channel_embed.3",
    "embed.bn_out": "channel_emb.channel_embed.4",
    "embed.norm": "channel_emb.norm",
}
# Spot checks of public names and shapes, read off models/net.py with nb_filter=[32, 64, 112, 160].
PUBLIC_SHAPES = {
    "v1.Conv_BN_ReLU_2.0.weight": (32, 1, 3, 3),
    "i4.Conv_BN_ReLU_2.4.running_var": (160,),
    "fusion1.channel_weight.mlp.0.weight": (128, 128),
    "fusion1.channel_weight.mlp.2.weight": (64, 128),
    "fusion2.channel_emb.channel_embed.1.weight": (64, 1, 3, 3),
    "fusion3.space_weight2.mlp.2.weight": (1, 112, 1, 1),
    "fusion4.cross.cross_attn.kv1.weight": (320, 160),
    "fusion4.cross.end_proj2.weight": (160, 320),
    "fusion4.channel_emb.residual.weight": (160, 320, 1, 1),
    "up_concat3.conv1.weight": (112, 272, 3, 3),
    "up_concat1.conv2.bias": (32,),
    "final.weight": (1, 32, 1, 1),
}
N_PUBLIC_KEYS = 298  # len(occo(nb_filter=[32, 64, 112, 160]).state_dict())


def to_public(key: str) -> str:
    top, index, *rest = key.split(".")
    if top in ("encoder_vi", "encoder_ir"):
        return f"{top[-2]}{int(index) + 1}.Conv_BN_ReLU_2.{ENCODER[rest[0]]}.{rest[1]}"
    if top == "fuse":
        return f"fusion{int(index) + 1}.{FUSION['.'.join(rest[:-1])]}.{rest[-1]}"
    if top == "decoder":
        return f"up_concat{3 - int(index)}.{rest[0]}.{rest[1]}"
    assert top == "head"
    return f"final.{index}"


def trained_like(cfg: Arch, seed: int = 0) -> torch.nn.Module:
    """A model whose running statistics are not the defaults, so every buffer matters in eval mode."""
    model = build_model(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
    return model


def public_checkpoint(model: torch.nn.Module, prefix: str = "") -> dict:
    state = {prefix + to_public(k): v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    return {"meta": {"epoch": 20, "iter": 1234}, "state_dict": state, "optimizer": optimizer.state_dict()}


def inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    """A batch of two pairs as the network's keyword arguments."""
    g = torch.Generator().manual_seed(seed)
    return {"ir": torch.rand(2, 1, 24, 40, generator=g), "vi": torch.rand(2, 1, 24, 40, generator=g)}


@pytest.mark.parametrize("prefix", ["", "module."])
def test_convert_public_checkpoint_round_trip(tmp_path, prefix):
    original = trained_like(Arch(compat="official"))
    public = public_checkpoint(original, prefix)
    assert len(public["state_dict"]) == N_PUBLIC_KEYS
    for name, shape in PUBLIC_SHAPES.items():
        assert tuple(public["state_dict"][prefix + name].shape) == shape, name
    torch.save(public, tmp_path / "occo.pth")

    dst = convert_checkpoint(tmp_path / "occo.pth", tmp_path / "converted.pt")
    model, cfg = load_model(dst)
    assert cfg == Arch(compat="official")
    for key, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert torch.equal(fuse_y(model, **inputs()), fuse_y(original, **inputs()))
    assert torch.equal(model.eval()(**inputs()), original.eval()(**inputs()))
    assert torch.load(dst, weights_only=True)["source"]["file"] == "occo.pth"


def test_convert_lists_unmapped_missing_and_misshapen_keys(tmp_path):
    public = public_checkpoint(build_model(Arch(compat="official"), seed=0))
    state = public["state_dict"]
    del state["fusion2.cross.norm1.weight"]
    state["fusion2.extra_head.weight"] = torch.zeros(3)
    state["final.bias"] = torch.zeros(2)
    torch.save(public, tmp_path / "occo.pth")
    with pytest.raises(CheckpointError) as err:
        convert_checkpoint(tmp_path / "occo.pth", tmp_path / "out.pt")
    message = str(err.value)
    assert "occo.pth" in message
    assert "unmapped public keys: fusion2.extra_head.weight" in message
    assert "missing keys: fuse.1.merge_vi.norm.weight" in message
    assert "wrong shapes: head.bias (2,)" in message
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize(
    "cfg",
    [
        Arch(),
        Arch(compat="official", cross_attention=False),
        Arch(spatial_enhancement=False, widths=[8, 16, 24, 32], heads=[2, 2, 2, 1]),
        Arch(attention_routing="paper"),
    ],
)
def test_save_load_round_trip(tmp_path, cfg):
    model = trained_like(cfg, seed=3)
    path = save_checkpoint(tmp_path / "run" / "model.pt", model, cfg, epoch=4, metrics={"loss": [0.5, 0.25]})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 4 and raw["metrics"] == {"loss": [0.5, 0.25]}
    assert raw["arch"] == as_dict(cfg)  # the arch params as plain data
    loaded, loaded_cfg = load_model(path)
    assert loaded_cfg == cfg and not loaded.training
    assert torch.equal(fuse_y(loaded, **inputs()), fuse_y(model, **inputs()))


def dataclass_arch(arch: Arch, routing: bool = True) -> dict:
    """``arch`` in the form of a checkpoint whose entry is a dataclass's ``asdict``: tuples, a ``network``
    entry, and ``attention_routing`` only when ``routing``."""
    entry = {
        "compat": arch.compat,
        "spatial_enhancement": arch.spatial_enhancement,
        "cross_channel": arch.cross_channel,
        "cross_attention": arch.cross_attention,
        "widths": tuple(arch.widths),
        "heads": tuple(arch.heads),
        "spatial_gate": arch.spatial_gate,
        "token_norm": arch.token_norm,
        "network": "fifn",
    }
    return {**entry, "attention_routing": arch.attention_routing} if routing else entry


@pytest.mark.parametrize("routing", [True, False])
@pytest.mark.parametrize("compat", ["fixed", "official"])
def test_checkpoint_with_a_dataclass_arch_entry_loads(tmp_path, compat, routing):
    """Tuples and ``network: fifn`` are read as the arch params; without attention_routing, the code routing."""
    arch = Arch(compat=compat, widths=[8, 16, 24, 32], heads=[2, 2, 2, 1])
    model = trained_like(arch, seed=5)
    raw = torch.load(save_checkpoint(tmp_path / "new.pt", model, arch), weights_only=True)
    torch.save({**raw, "arch": dataclass_arch(arch, routing)}, tmp_path / "old.pt")
    loaded, cfg = load_model(tmp_path / "old.pt")
    assert cfg == arch and cfg.attention_routing == "code"
    assert torch.equal(fuse_y(loaded, **inputs()), fuse_y(model, **inputs()))
    bad = {"network": "unet", "dropout": 0.1}
    for key, value in bad.items():
        torch.save({**raw, "arch": {**dataclass_arch(arch), key: value}}, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=value if key == "network" else "arch.dropout"):
            load_model(tmp_path / "bad.pt")


def test_save_rejects_objects_and_mismatched_config(tmp_path):
    model = build_model(Arch(), seed=0)
    with pytest.raises(TypeError, match="extra.optimizer"):
        save_checkpoint(tmp_path / "m.pt", model, Arch(), optimizer=torch.optim.SGD(model.parameters(), lr=1))
    with pytest.raises(ValueError, match="built from"):
        save_checkpoint(tmp_path / "m.pt", model, Arch(compat="official"))
    assert list(tmp_path.iterdir()) == []


def test_missing_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_model(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        convert_checkpoint(tmp_path / "nope.pth", tmp_path / "out.pt")
    torch.save(public_checkpoint(build_model(Arch(compat="official"), seed=0)), tmp_path / "occo.pth")
    with pytest.raises(CheckpointError, match="no 'arch' entry"):
        load_model(tmp_path / "occo.pth")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")


def test_cli_convert_checkpoint(tmp_path, capsys):
    from occo.cli import main

    original = trained_like(Arch(compat="official"))
    torch.save(public_checkpoint(original, "module."), tmp_path / "occo.pth")
    main(["convert-checkpoint", str(tmp_path / "occo.pth"), str(tmp_path / "ours.pt")])
    model, cfg = load_model(tmp_path / "ours.pt", "cpu")
    assert cfg.compat == "official"
    torch.testing.assert_close(fuse_y(model, **inputs()), fuse_y(original, **inputs()))
    with pytest.raises(SystemExit) as err:
        main(["convert-checkpoint", str(tmp_path / "absent.pth"), str(tmp_path / "x.pt")])
    assert "absent.pth" in str(err.value) and "\n" not in str(err.value)


def test_unreadable_files_name_the_file_the_problem_and_what_to_do(tmp_path):
    ours = save_checkpoint(tmp_path / "ours.pt", build_model(Arch(), seed=0), Arch())
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "cut.pt").write_bytes(ours.read_bytes()[: ours.stat().st_size // 2])
    torch.save({"state_dict": {}, "model": PicklePayload(tmp_path / "executed")}, tmp_path / "evil.pt")
    cases = {
        "empty.pt": r"empty\.pt is empty \(0 bytes",
        "cut.pt": r"cut\.pt is truncated or corrupt",
        "evil.pt": r"evil\.pt holds pickled Python objects \(io\.open\)",
    }
    for name, pattern in cases.items():
        with pytest.raises(CheckpointError, match=pattern) as err:
            load_model(tmp_path / name)
        message = str(err.value)
        assert "\n" not in message
        assert message.endswith("re-run the train stage, or point to a complete occo checkpoint")  # what to do
    assert not (tmp_path / "executed").exists()  # the pickle was refused, never run
    with pytest.raises(CheckpointError, match=r"empty\.pt is empty .*the authors' released occo\.pth"):
        convert_checkpoint(tmp_path / "empty.pt", tmp_path / "out.pt")


def test_convert_refuses_one_of_our_own_checkpoints(tmp_path, capsys):
    from occo.cli import main

    ours = save_checkpoint(tmp_path / "occo.pt", build_model(Arch(), seed=0), Arch())
    with pytest.raises(CheckpointError, match=r"occo\.pt is already an occo checkpoint .*use it as is"):
        convert_checkpoint(ours, tmp_path / "out.pt")
    with pytest.raises(SystemExit) as err:
        main(["convert-checkpoint", str(ours), str(tmp_path / "out.pt")])
    message = str(err.value)
    assert "already an occo checkpoint" in message and str(ours) in message and "\n" not in message
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask, mode):
    """Like every other output (not 0600, as mkstemp made it)."""
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "m.pt", build_model(Arch(), seed=0), Arch())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_non_finite_state_is_never_written(tmp_path):
    model = build_model(Arch(), seed=0)
    path = save_checkpoint(tmp_path / "last.pt", model, Arch(), step=1)
    before = path.read_bytes()
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    with pytest.raises(CheckpointError, match=r"refusing to write .*last\.pt: the state holds NaN or inf"):
        save_checkpoint(path, model, Arch(), step=2)
    clean = build_model(Arch(), seed=0)
    with pytest.raises(CheckpointError, match="NaN or inf"):  # optimiser state counts too
        save_checkpoint(path, clean, Arch(), optimizer={"state": {0: {"exp_avg": torch.tensor([float("inf")])}}})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


class _FullDisk(io.FileIO):
    """A file on a disk with room for 64 KiB: a write past it fails with ENOSPC."""

    def write(self, data) -> int:
        if self.tell() + len(memoryview(data)) > 1 << 16:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_during_a_save_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    """ENOSPC used to surface as `RuntimeError: [enforce fail at inline_container.cc]`, hiding the cause and file."""
    cfg = Arch(widths=[8, 8, 8, 8], heads=[1, 1, 1, 1])
    path = save_checkpoint(tmp_path / "last.pt", build_model(cfg), cfg, step=1)
    before = path.read_bytes()
    monkeypatch.setattr(Path, "open", lambda self, mode="r", *a, **k: _FullDisk(self, mode.replace("b", "")))
    with pytest.raises(OSError) as err:
        save_checkpoint(path, build_model(cfg), cfg, step=2, padding=torch.zeros(1 << 16))
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(path))
    assert str(err.value) == f"[Errno 28] No space left on device: '{path}'"
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
