"""Whole-process wall time and peak RSS of resnet-inspect against `import torch` and against the
peers (fvcore on real CPU tensors, torch's FlopCounterMode on meta tensors), side by side in one run.

    python benchmarks/bench_cli.py                 # 5 repetitions, writes docs/performance.md
    python benchmarks/bench_cli.py --reps 9 --sweep # also every registered variant once, at the limits

Each measurement is its own process (`python -c ...` or the `resnet-inspect` console script), timed
from spawn to exit with its peak RSS from wait4(). Repetitions are interleaved so that drift in the
machine's speed hits every row alike. Uses only the standard library, torch and fvcore.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = shutil.which("resnet-inspect") or f"{PY} -m resnet_inspect"
EXPECTED_MACS = 1_929_079_898_112  # resnet152, 1024x2048, output stride 8: conv + linear MACs

PEER_SETUP = """
import sys, torch
from resnet_inspect import build
model = build('resnet152', output_stride=8, device='{device}', init={init})
x = torch.zeros(1, 3, 1024, 2048, device='{device}')
"""
FVCORE = (
    PEER_SETUP.format(device="cpu", init=True)
    + """
from fvcore.nn import FlopCountAnalysis
flops = FlopCountAnalysis(model, x)
flops.unsupported_ops_warnings(False)
with torch.no_grad():
    ops = flops.by_operator()
print(int(ops['conv'] + ops.get('linear', 0) + ops.get('addmm', 0)))
"""
)
FLOP_COUNTER = (
    PEER_SETUP.format(device="meta", init=False)
    + """
from torch.utils.flop_counter import FlopCounterMode
with FlopCounterMode(display=False) as counter:
    model(x)
print(counter.get_total_flops() // 2)  # FlopCounterMode counts 2 per multiply-accumulate
"""
)

OURS = [
    ("show resnet50", "show resnet50"),
    (
        "show resnext101_64x4d, 16384x16384, OS8",
        "show resnext101_64x4d --input 16384x16384 --output-stride 8",
    ),
    ("flops resnet152, 1024x2048, OS8", "flops resnet152 --input 1024x2048 --output-stride 8"),
    (
        "flops resnet200_vd, 16384x16384, batch 256, OS8",
        "flops resnet200_vd --input 16384x16384 --batch 256 --output-stride 8",
    ),
    (
        "flops resnext101_32x16d --per layer, 16384x16384",
        "flops resnext101_32x16d --input 16384x16384 --per layer",
    ),
    (
        "flops seresnextaa101d_32x8d, 1024x2048, OS16",
        "flops seresnextaa101d_32x8d --input 1024x2048 --output-stride 16",
    ),
    (
        "flops resnet50 resnet50_vd resnext50_32x4d wide_resnet50_2",
        "flops resnet50 resnet50_vd resnext50_32x4d wide_resnet50_2",
    ),
    ("rf resnet152, OS8, multi-grid 1,2,4", "rf resnet152 --output-stride 8 --multi-grid 1,2,4"),
    ("diff resnet50d resnet50_vd, OS8", "diff resnet50d resnet50_vd --output-stride 8"),
    ("diff resnet101@os16 resnet101@os8, 1024x2048", "diff resnet101@os16 resnet101@os8 --input 1024x2048"),
    (
        "memory resnet101, 769x769, batch 8, OS8, budget",
        "memory resnet101 --output-stride 8 --input 769 --batch 8 --budget 24GiB",
    ),
    (
        "memory resnet152 --per block, 16384x16384, batch 256, OS8",
        "memory resnet152 --output-stride 8 --input 16384x16384 --batch 256 --per block",
    ),
    ("memory resnet50 --inference, bfloat16, batch 64", "memory resnet50 --inference --dtype bfloat16 --batch 64"),
    ("flops (zoo table, 224)", "flops"),
    ("list", "list"),
]


def measure(argv: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes (from wait4) and stdout of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}")
    return wall, usage.ru_maxrss * 1024, out


def cli(args: str) -> list[str]:
    return [*CLI.split(), *args.split()]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    import fvcore  # noqa: F401  (version below)
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, fvcore {version('fvcore')}, "
        f"resnet-inspect {version('resnet-inspect')}"
    )


def summarise(samples: list[tuple[float, int]]) -> tuple[float, float, float, int]:
    walls = [w for w, _ in samples]
    return statistics.median(walls), min(walls), max(walls), max(r for _, r in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="repetitions of every row (default 5)")
    parser.add_argument("--peer-reps", type=int, default=3, help="repetitions of the fvcore row (slow)")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also run show/flops/rf at 16384x16384, batch 256, OS8 on every registered variant once",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, int]]] = {"import torch": []}
    commands = {"import torch": [PY, "-c", "import torch"]}
    for label, argv in OURS:
        commands[label] = cli(argv)
        rows[label] = []
    peers = {
        "fvcore FlopCountAnalysis, real CPU tensors": [PY, "-c", FVCORE],
        "torch FlopCounterMode, meta tensors": [PY, "-c", FLOP_COUNTER],
    }
    for label in peers:
        rows[label] = []

    for rep in range(args.reps):
        for label, argv in commands.items():
            wall, rss, _ = measure(argv)
            rows[label].append((wall, rss))
        for label, argv in peers.items():
            if label.startswith("fvcore") and rep >= args.peer_reps:
                continue
            wall, rss, out = measure(argv)
            if int(out.strip()) != EXPECTED_MACS:
                raise SystemExit(f"{label} counted {out.strip()}, not {EXPECTED_MACS}")
            rows[label].append((wall, rss))
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)

    ours_out = measure(cli("flops resnet152 --input 1024x2048 --output-stride 8 --json"))[2]
    import json

    assert json.loads(ours_out)["macs"] == EXPECTED_MACS

    base_wall, _, _, base_rss = summarise(rows["import torch"])
    ours_wall = summarise(rows["flops resnet152, 1024x2048, OS8"])[0]
    lines = [
        "# Performance",
        "",
        "Written by `benchmarks/bench_cli.py`; rerun it with `python benchmarks/bench_cli.py` (add",
        "`--sweep` to also run every registered variant at 16384x16384, batch 256, output stride 8).",
        "",
        f"Machine: {machine()}.",
        "",
        (
            f"Whole-process wall time (median of {args.reps} runs, fvcore {min(args.reps, args.peer_reps)}; "
            "min-max in brackets) and peak RSS, every row its own process, repetitions interleaved. "
            'Ratios are to `python -c "import torch"` measured in the same run; the targets are '
            "<= 1.25x and <= +100 MB for every analysis command, <= 1.5x for the zoo table."
        ),
        "",
        "| what | wall (s) | x import torch | peak RSS (MB) | RSS - import torch (MB) |",
        "|---|---|---|---|---|",
    ]
    for label, samples in rows.items():
        med, lo, hi, rss = summarise(samples)
        lines.append(
            f"| {label} | {med:.2f} [{lo:.2f}-{hi:.2f}] | {med / base_wall:.2f} | {rss / 2**20:.0f} | "
            f"{(rss - base_rss) / 2**20:+.0f} |"
        )
    fv = summarise(rows["fvcore FlopCountAnalysis, real CPU tensors"])[0]
    fc = summarise(rows["torch FlopCounterMode, meta tensors"])[0]
    lines += [
        "",
        (
            "The same count, resnet152 at 1024x2048, output stride 8 (all three give "
            f"{EXPECTED_MACS:,} conv + linear MACs): resnet-inspect {ours_wall:.2f} s, "
            f"fvcore {fv:.2f} s ({fv / ours_wall:.1f}x slower), FlopCounterMode {fc:.2f} s "
            f"({fc / ours_wall:.2f}x slower). Targets: at least 15x and 1.7x."
        ),
    ]
    if args.sweep:
        from resnet_inspect.model.names import REGISTRY

        worst = (0.0, "")
        worst_rss = (0, "")
        for name in REGISTRY:
            for command in ("show", "flops", "rf"):
                extra = (
                    " --input 16384x16384 --batch 256"
                    if command == "flops"
                    else (" --input 16384x16384" if command == "show" else "")
                )
                argv = cli(f"{command} {name} --output-stride 8{extra}")
                wall, rss, _ = measure(argv)
                worst = max(worst, (wall, " ".join(argv[-6:])))
                worst_rss = max(worst_rss, (rss, " ".join(argv[-6:])))
        base_now = statistics.median(measure(commands["import torch"])[0] for _ in range(3))
        lines += [
            "",
            (
                f"Sweep: `show`, `flops` and `rf` on each of the {len(REGISTRY)} registered variants, output "
                "stride 8, 16384x16384 (flops: batch 256), one run each: slowest "
                f"{worst[0]:.2f} s ({worst[0] / base_now:.2f}x import torch, `{worst[1]}`), largest peak RSS "
                f"{worst_rss[0] / 2**20:.0f} MB ({(worst_rss[0] - base_rss) / 2**20:+.0f} MB, `{worst_rss[1]}`)."
            ),
        ]
    text = "\n".join(lines) + "\n"
    write_section(Path(args.out), text)
    print(text)


START, END = "<!-- bench_cli: start -->", "<!-- bench_cli: end -->"


def write_section(path: Path, text: str) -> None:
    """Replace this script's section of the file (between its markers), keeping the rest."""
    block = f"{START}\n{text}{END}\n"
    old = path.read_text() if path.exists() else ""
    if START in old and END in old:
        head, _, rest = old.partition(START)
        _, _, tail = rest.partition(END)
        path.write_text(head + block + tail.lstrip("\n"))
    else:
        path.write_text(block + ("\n" + old if old else ""))


if __name__ == "__main__":
    main()
