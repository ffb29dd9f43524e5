"""Checks that need a CUDA GPU (``make gpu-check``): every model and stage on the device, --amp on
and off, a 1-GPU torchrun run over NCCL, and export of a generator that lives on the GPU. The CPU
suite skips them with the reason."""
import os
import subprocess
import sys

import pytest
import torch

import options
from tests.conftest import REPO, randomise, run_main, tiny_args
from models import MODELS, create_model
from models.layers import masks
from compress.mask_search import MaskSearch
from compress.pruning import prune_generator

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU (run `make gpu-check` on a GPU machine)")]

GPU = torch.device("cuda:0")


@pytest.fixture(autouse=True)
def exact_convolutions():
    # TF32 convolutions round to 10 mantissa bits: the parity checks compare fp32 results
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def gpu_args(tmp_path, name, **extra):
    argv = tiny_args(tmp_path, name, **extra)
    i = argv.index("--gpu_ids")
    argv[i + 1] = "0"
    return argv


def batch(seed=0, n=1):
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "B": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1,
            "A_paths": ["a"] * n, "B_paths": ["b"] * n}


def on_gpu(module):
    return all(t.device.type == "cuda" for t in list(module.parameters()) + list(module.buffers()))


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
@pytest.mark.parametrize("model", list(MODELS))
def test_models_train_on_the_gpu_with_and_without_amp(tmp_path, model, amp):
    extra = {"amp": True, "amp_dtype": amp} if amp else {}
    opt = options.parse("train", gpu_args(tmp_path, "g", model=model, mask=True, mask_weight_decay=0.01, **extra))
    net = create_model(opt, GPU)
    search = MaskSearch(opt, net, n_batches=2)
    net.add_loss_term(search.loss_term)
    assert all(on_gpu(n) for n in net.nets.values())
    for step in range(2):
        net.set_input(batch(step))
        assert net.real_A.device.type == "cuda"
        net.optimize_parameters()
        search.after_iteration(step + 1, 1, step + 1)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in net.get_current_losses().values())
    for m in masks(net.nets[net.generator_names[0]]).values():
        assert m.mask_weight.dtype == torch.float32 and m.mask_weight.device.type == "cuda"
    assert net.scaler.is_enabled() == (amp == "fp16")
    slim, _ = prune_generator(net.nets[net.generator_names[0]].eval())
    assert on_gpu(slim)
    with torch.no_grad():
        assert slim(batch()["A"].to(GPU)).device.type == "cuda"


def test_pipeline_stages_on_the_gpu(tmp_path):
    """Teacher, search, prune + fine-tune with distillation, test: each stage runs on cuda:0."""
    assert run_main("train", gpu_args(tmp_path, "teacher")) == 0
    teacher = tmp_path / "teacher" / "checkpoints" / "latest.pth"
    assert run_main("train", gpu_args(tmp_path, "search", mask=True, amp=True)) == 0
    search = tmp_path / "search" / "checkpoints" / "latest.pth"
    assert run_main("prune", gpu_args(tmp_path, "ft", mask=True, load_path=search, finetune=True, amp=True,
                                      lambda_attention_distill=100, lambda_discriminator_distill=1e-4,
                                      pretrain_path=teacher)) == 0
    assert run_main("test", gpu_args(tmp_path, "ft", load_path=tmp_path / "ft" / "checkpoints" / "latest.pth",
                                     results_dir=tmp_path / "res")) == 0
    log = (tmp_path / "ft" / "logger.log").read_text()
    assert "cuda:0" in log
    assert "cuDNN autotuning on" in log


def test_torchrun_one_gpu_nccl(tmp_path):
    """A 1-process torchrun run joins an NCCL process group and trains a few iterations."""
    argv = [str(a) for a in gpu_args(tmp_path, "nccl", mask=True, max_dataset_size=3)]
    argv[argv.index("--gpu_ids") + 1] = "0"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
           os.path.join(REPO, "train.py"), *argv]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=150,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nccl backend, rank 0 of 1, on cuda:0" in proc.stdout + proc.stderr
    assert (tmp_path / "nccl" / "checkpoints" / "latest.pth").is_file()


def test_export_of_a_gpu_generator(tmp_path):
    """A generator living on the GPU exports; onnxruntime (CPU) and the TorchScript module on the GPU
    compute what it computes on the GPU."""
    from models.families.resnet import ResnetGenerator
    from pipeline.export import export_onnx, export_torchscript, onnx_session

    masked = randomise(ResnetGenerator(ngf=8, n_blocks=6, mask=True), 0, bound=0.0)
    net = prune_generator(masked)[0].eval().to(GPU)
    x = batch(n=2)["A"]
    with torch.no_grad():
        expected = net(x.to(GPU)).cpu()
    export_onnx(net.cpu(), str(tmp_path / "g.onnx"), size=32)
    got = torch.from_numpy(onnx_session(str(tmp_path / "g.onnx")).run(None, {"input": x.numpy()})[0])
    assert (got - expected).abs().max().item() <= 1e-4
    net.to(GPU)
    export_torchscript(net, str(tmp_path / "g.pt"), size=32)
    loaded = torch.jit.load(str(tmp_path / "g.pt"), map_location=GPU)
    with torch.no_grad():
        assert (loaded(x.to(GPU)).cpu() - expected).abs().max().item() <= 1e-4
