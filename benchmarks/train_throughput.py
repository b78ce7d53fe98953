"""Adversarial-training throughput: our trainer against the public ARD/RSLAD-style loop.

PGD-10 training of the MNIST and CIFAR-10 robust teachers (method ``rt``), images per second,
in the same process: the reference loop is written the way the public ARD/RSLAD training scripts
are (torchvision dataset + DataLoader with ToTensor, a per-batch Python attack loop, default
settings); ours is ``fkd.train.train`` over in-memory tensors, with the variants listed below.

    python benchmarks/train_throughput.py [--mnist-images 12800] [--cifar-images 2560]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fkd.train_config import train_config  # noqa: E402
from fkd.data import data_dir, load_split  # noqa: E402
from fkd.models import make_model  # noqa: E402
from fkd.train import TrainData, train  # noqa: E402


def reference_loop(dataset: str, n_images: int, batch_size: int = 128) -> float:
    """The public scripts' loop: DataLoader(ToTensor), 0.001*randn start, per-batch PGD-10. Images/s."""
    import torchvision
    import torchvision.transforms as T

    load_split(dataset, train=True)  # makes sure the files are in the data directory
    cfg = train_config(dataset, "rt")
    if dataset == "cifar10":
        tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
        ds = torchvision.datasets.CIFAR10(str(data_dir()), train=True, transform=tf)
    else:
        ds = torchvision.datasets.MNIST(str(data_dir()), train=True, transform=T.ToTensor())
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = make_model(dataset, "teacher")
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr0, momentum=0.9, weight_decay=cfg.weight_decay)
    seen, t0 = 0, time.perf_counter()
    for x, y in loader:
        model.eval()
        x_adv = x.detach() + 0.001 * torch.randn(x.shape)
        for _ in range(cfg.steps):
            x_adv.requires_grad_()
            with torch.enable_grad():
                loss = F.cross_entropy(model(x_adv), y)
            grad = torch.autograd.grad(loss, [x_adv])[0]
            x_adv = x_adv.detach() + cfg.step_size * torch.sign(grad.detach())
            x_adv = torch.min(torch.max(x_adv, x - cfg.eps), x + cfg.eps)
            x_adv = torch.clamp(x_adv, 0.0, 1.0)
        model.train()
        opt.zero_grad()
        loss = F.cross_entropy(model(x_adv), y)
        loss.backward()
        opt.step()
        seen += x.shape[0]
        if seen >= n_images:
            break
    return seen / (time.perf_counter() - t0)


def ours(dataset: str, n_images: int, batch_size: int = 128, channels_last: bool = False) -> float:
    """One epoch of ``fkd.train.train`` over ``n_images`` training images (tiny test set). Images/s."""
    tx, ty = load_split(dataset, train=True)
    vx, vy = load_split(dataset, train=False)
    data = TrainData(tx[:n_images], ty[:n_images], vx[:100], vy[:100])
    cfg = train_config(dataset, "rt", epochs=1, batch_size=batch_size, eps_warmup_epochs=0)
    t0 = time.perf_counter()
    train(cfg, data=data, progress=False, channels_last=channels_last)
    return n_images / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-images", type=int, default=12800)
    p.add_argument("--cifar-images", type=int, default=2560)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    for dataset, n in [("mnist", args.mnist_images), ("cifar10", args.cifar_images)]:
        ours(dataset, min(n, 1024))  # warm-up: data in memory, kernels initialised
        rows = []
        for threads in sorted({1, torch.get_num_threads()}):
            torch.set_num_threads(threads)
            rows.append((f"reference loop, {threads} thread(s)", reference_loop(dataset, n)))
            rows.append((f"fkd trainer, batch 128, {threads} thread(s)", ours(dataset, n)))
            rows.append((f"fkd trainer, batch 256, {threads} thread(s)", ours(dataset, n, batch_size=256)))
            if dataset == "cifar10":
                rows.append((f"fkd trainer, batch 128, channels_last, {threads} thread(s)",
                             ours(dataset, n, channels_last=True)))
        torch.set_num_threads(os.cpu_count() or 1)
        ref = max(v for k, v in rows if k.startswith("reference"))
        print(f"\n{dataset}: PGD-10 adversarial training of the teacher, {n} images")
        for name, v in rows:
            print(f"  {name:<52} {v:9.0f} img/s   x{v / ref:5.2f}")
        best = max(rows, key=lambda r: r[1] if not r[0].startswith("reference") else 0)
        print(f"  best ours / best reference: {best[1] / ref:.2f}x ({best[0]})")


if __name__ == "__main__":
    main()
