"""A file that is not a datatools checkpoint gets one line naming it, never PyTorch's ``weights_only=False`` advice
(issue 11 item 11)."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402

pytestmark = pytest.mark.train


def _garbage(folder: Path) -> dict[str, Path]:
    """Files a user may pass as --ckpt or --weights by mistake."""
    files = {
        "random": (folder / "random.pt", bytes(range(256)) * 4),
        "text": (folder / "notes.pt", b"hello, this is not a checkpoint\n"),
        "pickle": (folder / "pickled.pt", pickle.dumps(collections.OrderedDict(a=collections.Counter("ab")))),
    }
    for path, data in files.values():
        path.write_bytes(data)
    numpy_state = folder / "numpy.pt"  # a real torch file, but of objects weights_only refuses
    import numpy as np

    torch.save({"a": np.zeros(3)}, numpy_state)
    return {**{k: p for k, (p, _) in files.items()}, "numpy": numpy_state}


@pytest.mark.parametrize("kind", ["random", "text", "pickle", "numpy"])
def test_garbage_checkpoint_is_one_line_naming_the_file(kind: str, tiny_multiclass: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    bad = _garbage(tmp_path)[kind]
    train_dir, val_dir = tiny_multiclass
    runner = CliRunner()
    commands = [
        ["train", "evaluate", "--ckpt", str(bad), "--data", str(val_dir), "--out", str(tmp_path / "e")],
        ["train", "predict", "--ckpt", str(bad), "--images", str(val_dir / "images"), "--out", str(tmp_path / "p")],
        ["train", "soup", "--ckpt", str(bad), "--ckpt", str(bad), "--data", str(val_dir), "--out", str(tmp_path / "s")],
        ["train", "fit", "--data", str(train_dir), "--weights", str(bad), "--encoder", "resnet18", "--size", "64",
         "--epochs", "1", "--workers", "0", "--no-progress", "--out", str(tmp_path / "f")],
    ]
    for args in commands:
        result = runner.invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2, (args, result.output)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
        assert str(bad) in lines[0], lines[0]
        assert "weights_only" not in result.output and "trust" not in result.output, result.output
        what = "a weights file" if args[1] == "fit" else "a datatools checkpoint"
        assert f"not {what}" in lines[0], lines[0]
        assert not (tmp_path / args[-1]).exists()


def test_torch_file_without_the_datatools_tag(tmp_path: Path, tiny_multiclass: tuple[Path, Path]) -> None:
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    result = CliRunner().invoke(app, ["train", "evaluate", "--ckpt", str(other), "--data", str(tiny_multiclass[1]),
                                      "--out", str(tmp_path / "e")])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {other}: not a datatools checkpoint (a torch file without the "
                                     "'datatools-train/1' tag)")
