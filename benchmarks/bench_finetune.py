"""Time one fine-tuning iteration (CycleGAN, ngf-16 student, ngf-64 teacher, 64 px, batch 1).

    .venv/bin/python benchmarks/bench_finetune.py [--iters 10] [--warmup 3] [--threads 2]

Prints a table: median seconds per iteration (set_input + optimize_parameters) with both
distillations and, for reference, without distillation. The teacher has random weights: the cost
does not depend on them. Target on a 2-core CPU: <= 0.35 s with distillation (the original: 0.50 s).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import options  # noqa: E402
from models import create_model  # noqa: E402
from compress.distill import Distiller  # noqa: E402
from pipeline.finetune import load_teacher  # noqa: E402
from models.families.resnet import ResnetGenerator  # noqa: E402
from pipeline.checkpoint import header, save_checkpoint  # noqa: E402

SIZE = 64


def parse_opt(tmp, *extra):
    args = ["--dataroot", tmp, "--model", "cyclegan", "--crop_size", str(SIZE), "--load_size", str(SIZE),
            "--gpu_ids", "-1", "--display_id", "0", "--checkpoints_dir", tmp, *extra]
    return options.parse("prune", args)


def make_teacher(tmp):
    opt = parse_opt(tmp, "--ngf", "64")
    model = create_model(opt, torch.device("cpu"))
    state = {**header("training", "cyclegan", "train", opt), "epoch": 1, **model.state_dict()}
    path = os.path.join(tmp, "teacher.pth")
    save_checkpoint(state, path)
    return path


def time_iterations(model, iters, warmup):
    g = torch.Generator().manual_seed(0)
    batches = [{"A": torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1,
                "B": torch.rand(1, 3, SIZE, SIZE, generator=g) * 2 - 1, "A_paths": ["a"], "B_paths": ["b"]}
               for _ in range(iters + warmup)]
    model.train()
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        model.set_input(batch)
        model.optimize_parameters()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        teacher = make_teacher(tmp)
        student = ResnetGenerator(ngf=16).config()
        for label, extra in (("both distillations", ["--lambda_attention_distill", "100",
                                                     "--lambda_discriminator_distill", "1e-4",
                                                     "--pretrain_path", teacher]),
                             ("attention only", ["--lambda_attention_distill", "100", "--pretrain_path", teacher]),
                             ("no distillation", [])):
            opt = parse_opt(tmp, "--ngf", "16", *extra)
            model = create_model(opt, torch.device("cpu"), gen_configs={"G_A": student, "G_B": dict(student)})
            if extra:
                model.add_loss_term(Distiller(opt, model, load_teacher(opt, torch.device("cpu"))).loss)
            rows.append((label, *time_iterations(model, args.iters, args.warmup)))
    print(f"CycleGAN fine-tuning iteration, student ngf 16, teacher ngf 64, {SIZE} px, batch 1, "
          f"{args.threads} threads, median of {args.iters} after {args.warmup} warm-up")
    print(f"{'setting':<22}{'median s/iter':>15}{'min s/iter':>12}")
    for label, median, best in rows:
        print(f"{label:<22}{median:>15.3f}{best:>12.3f}")


if __name__ == "__main__":
    main()
