"""Screen training changes for their effect on GANformer's attention: short runs, one change each, same seed.

Every variant trains README command 1's network (shapes 32x32, k = 8 latents of 128 dims, k-means attention, no
style modulation, channels <= 32, batch 16, R1 gamma auto) for `--kimg` kimg with one change of flags, and logs the
attention diagnostics of `metrics.attention_stats` every kimg (`Attention/<G|Gs>/...` in `stats.jsonl`). The report
reads them back:

    screen.json  per variant: its flags and, per kimg, Gs's entropy per layer, resampling change and locality
    screen.png   mean entropy over the attention layers, the last layer's entropy, the change and the locality
                 vs kimg, one line per variant

Re-running continues: finished variants are kept, an interrupted one resumes from its checkpoint.

    python benchmarks/attention_screen.py                                   # the default screen (4 kimg each)
    python benchmarks/attention_screen.py --variants base,nodrop --kimg 8 --result-dir results/screen8
    python benchmarks/attention_screen.py --report-only --result-dir results/attention-screen
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dnnlib.files import atomic_file, write_json_atomic  # noqa: E402
from dnnlib.util import OneLineArgumentParser, UserError, print_user_error  # noqa: E402

BASE_FLAGS = ["--train", "--ganformer-default", "--dataset", "shapes", "--components-num", "8", "--latent-size", "128",
              "--mapping-ltnt2ltnt", "false", "--style", "false", "--channel-max", "32", "--batch-size", "16",
              "--batch-gpu", "16", "--gamma", "auto", "--metrics", "none", "--xla", "true", "--kimg-per-tick", "1",
              "--maps-snapshot-ticks", "1", "--img-snapshot-ticks", "4", "--network-snapshot-ticks", "4"]
# One change of flags per variant (on top of BASE_FLAGS).
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "nodrop": ["--attention-dropout", "0"],
    "style": ["--style", "true"],
    "nopos": ["--use-pos", "false"],
    "nokmeans": ["--kmeans", "false"],
    "gamma40": ["--gamma", "40"],
    "nomix": ["--style-mixing", "0"],
    "add": ["--integration", "add"],
    "k16": ["--components-num", "16"],
    "start16": ["--g-start-res", "4"],
    "k4": ["--components-num", "4"],
    "iters3": ["--kmeans-iters", "3"],
    "end8": ["--g-end-res", "4"],
    "duplex": ["--g-img2ltnt", "true"],
    "ltnt2ltnt": ["--mapping-ltnt2ltnt", "true"],
    "latent32": ["--latent-size", "32"],
    "chan64": ["--channel-max", "64"],
    "compdrop": ["--component-dropout", "0.1"],
    # 64x64 scenes: render them first with
    # `python prepare_data.py --shapes --resolution 64 --max-images 5000 --data-dir datasets/64`.
    "res64": ["--data-dir", os.path.join("datasets", "64")],
}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = OneLineArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--kimg", type=float, default=4.0, help="kimg per variant")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--data-dir", default="datasets", help="holds shapes (README command 1 renders it)")
    p.add_argument("--result-dir", default=os.path.join("results", "attention-screen"))
    p.add_argument("--report-only", action="store_true", help="only write screen.json/screen.png from the runs")
    a = p.parse_args(argv)
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown or not a.variants:
        raise UserError(f"--variants: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}")
    if not a.kimg > 0:
        raise UserError(f"--kimg {a.kimg}: must be positive")
    return a


def train(a: argparse.Namespace, name: str) -> None:
    """Trains (or resumes) one variant unless it has finished."""
    run = os.path.join(a.result_dir, name)
    if os.path.isfile(os.path.join(run, "exp-000", "_finished.txt")):
        return
    # The variant's flags come last, so that a variant may replace a common one (res64's --data-dir).
    cmd = [sys.executable, os.path.join(ROOT, "run_network.py"), *BASE_FLAGS, "--seed", str(a.seed),
           "--total-kimg", str(a.kimg), "--data-dir", a.data_dir, "--result-dir", run, *VARIANTS[name]]
    os.makedirs(a.result_dir, exist_ok=True)
    with open(os.path.join(a.result_dir, f"{name}.log"), "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise UserError(f"{name}: run_network.py exited {code}; see {os.path.join(a.result_dir, name + '.log')}")


def curves(run_dir: str) -> list[dict]:
    """Per logged kimg of a run: Gs's entropy per layer, change and locality (from its stats.jsonl)."""
    rows = []
    path = os.path.join(run_dir, "exp-000", "stats.jsonl")
    if not os.path.isfile(path):
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            layers = sorted(int(k.split("/")[2][1:]) for k in r if k.startswith("Attention/Gs/l") and k.endswith("/entropy"))
            if not layers:
                continue
            rows.append({"kimg": r["Progress/kimg"],
                         "entropy": [r[f"Attention/Gs/l{i}/entropy"] for i in layers],
                         "logit_spread": [r[f"Attention/Gs/l{i}/logit_spread"] for i in layers],
                         "change": r["Attention/Gs/change"], "locality": r.get("Attention/Gs/locality")})
    return rows


def report(a: argparse.Namespace) -> dict:
    """Writes screen.json and screen.png; returns the json content."""
    out = {"base_flags": BASE_FLAGS, "seed": a.seed, "kimg": a.kimg, "variants": {}}
    for name in a.variants:
        out["variants"][name] = {"flags": VARIANTS[name], "curve": curves(os.path.join(a.result_dir, name))}
    write_json_atomic(os.path.join(a.result_dir, "screen.json"), out)
    plot(out, os.path.join(a.result_dir, "screen.png"))
    return out


def plot(summary: dict, out_png: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    panels = [("mean entropy over layers", lambda r: sum(r["entropy"]) / len(r["entropy"])),
              ("entropy, last layer", lambda r: r["entropy"][-1]), ("change (one latent resampled)", lambda r: r["change"]),
              ("locality (x chance)", lambda r: r["locality"])]
    for name, rec in summary["variants"].items():
        rows = [r for r in rec["curve"] if r["locality"] is not None]
        for ax, (title, fn) in zip(axes, panels):
            ax.plot([r["kimg"] for r in rows], [fn(r) for r in rows], "o-", ms=3, label=name)
    for ax, (title, _) in zip(axes, panels):
        ax.set(xlabel="kimg", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(out_png) as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


def main(argv: Optional[list[str]] = None) -> int:
    try:
        a = parse_args(argv)
        if not a.report_only:
            for name in a.variants:
                print(f"{name}: {' '.join(VARIANTS[name]) or '(no change)'}", flush=True)
                train(a, name)
        summary = report(a)
    except UserError as exc:
        print_user_error(exc, prog="attention_screen.py")
        return 2
    except KeyboardInterrupt:
        print("attention_screen.py: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    for name, rec in summary["variants"].items():
        last = rec["curve"][-1] if rec["curve"] else None
        if last:
            print(f"{name:10s} kimg {last['kimg']:.1f} entropy mean {sum(last['entropy']) / len(last['entropy']):.3f} "
                  f"last {last['entropy'][-1]:.3f} change {last['change']:.3f} locality {last['locality'] or 0:.2f}")
    print(f"Wrote {os.path.join(a.result_dir, 'screen.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
