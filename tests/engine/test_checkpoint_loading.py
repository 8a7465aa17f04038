"""Checkpoints written on a GPU resume anywhere: every torch.load names where the tensors go
(finding 5 of issue 22)."""
import ast
import io
import zipfile
from pathlib import Path

import pytest
import torch

from ltbench.engine.hooks import BestOnVal

REPOSITORY = Path(__file__).resolve().parents[2]


def _as_if_saved_on(path: Path, device: str):
    """Rewrite a torch.save file so that its tensors say they were saved on `device` (a GPU this
    machine does not have), as a checkpoint written by a GPU run does."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(name for name in members if name.endswith("data.pkl"))
    location = device.encode()
    cpu = b"X" + (3).to_bytes(4, "little") + b"cpu"  # the location, a pickled string (protocol 2)
    assert cpu in members[name]
    members[name] = members[name].replace(cpu, b"X" + len(location).to_bytes(4, "little") + location)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    path.write_bytes(buffer.getvalue())


def test_best_on_val_resumes_a_state_written_on_another_gpu(tmp_path):
    module = torch.nn.Linear(3, 2)
    best = {"epoch": 4, "val_top1": 55.0, "state_dict": {k: v + 1 for k, v in module.state_dict().items()}}
    path = tmp_path / "best.pt"
    torch.save(best, path)
    _as_if_saved_on(path, "cuda:7")
    with pytest.raises(RuntimeError, match="CUDA"):  # what a plain torch.load does here
        torch.load(path, weights_only=True)
    hook = BestOnVal(module, lambda: None, None, path, resume=True)
    hook.after_fit()
    assert hook.best["epoch"] == 4
    assert all(torch.equal(module.state_dict()[k], v) for k, v in best["state_dict"].items())


def _torch_load_calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            yield node


def test_every_torch_load_names_a_map_location_and_loads_weights_only():
    """ltbench, the methods and the benchmark scripts: a torch.load without map_location puts GPU
    tensors back on the GPU they were saved from; weights_only refuses to unpickle code."""
    problems = []
    for folder in ("ltbench", "methods", "benchmarks"):
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            if path.is_relative_to(REPOSITORY / "ltbench" / "methods") or \
                    path.is_relative_to(REPOSITORY / "ltbench" / "benchmarks"):
                continue  # links to methods/ and benchmarks/
            for call in _torch_load_calls(path):
                keywords = {keyword.arg: keyword.value for keyword in call.keywords}
                weights_only = keywords.get("weights_only")
                if "map_location" not in keywords or not (isinstance(weights_only, ast.Constant)
                                                          and weights_only.value is True):
                    problems.append(f"{path.relative_to(REPOSITORY)}:{call.lineno}")
    assert not problems, f"torch.load without map_location or weights_only=True: {problems}"
