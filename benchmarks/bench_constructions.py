"""Memorization constructions side by side on Fashion-MNIST: Theorem 1, depth k, Baum's slabs.

For each target set (random labels, 10 classes; the true labels) on the 60,000 training
images (float32 pixels / 255, flattened, d = 784) this builds

- Theorem 1's network (``rethink.interpolate(X, Y)``, depth 1),
- the depth-k network (``depth=k``, k = 2, 4, 16),
- Baum's construction (``method="slabs"``),

and records its depth, hidden widths, weights (``num_weights``), the dense parameters of its
``to_sequential()`` network, the build time (one build, wall clock) and its exactness:
max |f(x_i) - y_i| over all training points (one-hot targets), both for ``forward`` and for the
literal network (Theorem 1: sum_j w_j relu(z - b_j) from the projection; depth k:
``forward_layers``; slabs: ``to_sequential()``, the same arithmetic as ``forward``).

Writes docs/results/constructions.json, benchmarks/RESULTS_constructions.md and
docs/CONSTRUCTIONS.md (both generated from the JSON; ``--render-only`` regenerates them).

Usage: python benchmarks/bench_constructions.py [--quick] [--threads 2] [--render-only]
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, parser  # noqa: E402

import rethink  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JSON_PATH = os.path.join(ROOT, "docs", "results", "constructions.json")
RESULTS_PATH = os.path.join(ROOT, "benchmarks", "RESULTS_constructions.md")
DOCS_PATH = os.path.join(ROOT, "docs", "CONSTRUCTIONS.md")
FASHION = "/usr/share/datasets/fashion-mnist"
CONFIGS = [
    ("Theorem 1", {}),
    ("depth 2", {"depth": 2}),
    ("depth 4", {"depth": 4}),
    ("depth 16", {"depth": 16}),
]
CONFIGS += [("slabs (Baum)", {"method": "slabs"})]


def literal_outputs(net, X: torch.Tensor) -> torch.Tensor:
    """The literal network's outputs on X (see the module docstring), float64 (n, K)."""
    if isinstance(net, rethink.InterpolatingNet):
        z, b = net.project(X), net.b
        W = net.w.reshape(b.numel(), -1)
        chunk = max(1, 2**24 // b.numel())
        return torch.cat([torch.relu(z[i : i + chunk, None] - b) @ W for i in range(0, z.numel(), chunk)])
    if hasattr(net, "forward_layers"):
        return net.forward_layers(X)
    seq = net.to_sequential()
    with torch.no_grad():
        return torch.cat([seq(X[i : i + 8192].double()) for i in range(0, X.shape[0], 8192)])


def dense_parameters(net, d: int) -> int:
    widths, K = net.hidden_widths, net.num_outputs
    sizes = list(zip([d] + widths, widths + [K]))
    return sum(i * o for i, o in sizes) + sum(widths)  # weights and hidden biases (no output bias)


def hidden_widths(net) -> list[int]:
    return net.hidden_widths if hasattr(net, "hidden_widths") else [net.b.numel()]


def run_one(name, kwargs, X, Y, T) -> dict:
    t0 = time.perf_counter()
    net = rethink.interpolate(X, Y, **kwargs)
    build = time.perf_counter() - t0
    widths = hidden_widths(net)
    forward_err = float((net(X) - T).abs().max())
    t0 = time.perf_counter()
    literal_err = float((literal_outputs(net, X).reshape(T.shape) - T).abs().max())
    literal_s = time.perf_counter() - t0
    if isinstance(net, rethink.InterpolatingNet):
        dense = X.shape[1] * widths[0] + widths[0] + widths[0] * net.num_outputs
    else:
        dense = dense_parameters(net, X.shape[1])
    row = dict(
        construction=name,
        depth=len(widths),
        widths=[min(widths), max(widths)],
        neurons=sum(widths),
        weights=net.num_weights,
        dense_parameters=dense,
        build_s=round(build, 2),
        literal_eval_s=round(literal_s, 1),
        max_err_forward=forward_err,
        max_err_literal=literal_err,
        predict_ok=bool(torch.equal(net.predict(X), Y)),
    )
    if hasattr(net, "report"):
        rep = dict(net.report)
        row["slabs"] = dict(groups=net.num_groups, d_eff=net.d_eff, **rep)
    if hasattr(net, "block_sizes"):
        row["distinct_nodes"] = sum(net.block_sizes())
    elif isinstance(net, rethink.InterpolatingNet):
        row["distinct_nodes"] = net.node_z.numel()
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--render-only", action="store_true", help="regenerate the markdown from the JSON")
    args = p.parse_args()
    if args.render_only:
        render(json.load(open(JSON_PATH)))
        return
    torch.set_num_threads(args.threads)
    ds = rethink.datasets.load("fashion_mnist", root=FASHION)
    n = 5000 if args.quick else len(ds.train)
    X = (ds.train.images[:n].reshape(n, -1).to(torch.float32) / 255).contiguous()
    true = ds.train.labels[:n].clone()
    rand = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(0))
    distinct = torch.unique(X, dim=0).shape[0]
    constant = int((X == X[:1]).all(dim=0).sum())
    result = dict(
        command="python benchmarks/bench_constructions.py" + (" --quick" if args.quick else ""),
        machine=machine(args.device),
        threads=torch.get_num_threads(),
        load_average_start=os.getloadavg()[0],
        data=dict(n=n, d=X.shape[1], duplicate_rows=n - distinct, constant_columns=constant),
        runs=[],
    )
    t_all = time.perf_counter()
    for targets, Y in [("random labels", rand), ("true labels", true)]:
        T = torch.nn.functional.one_hot(Y, 10).double()
        for name, kwargs in CONFIGS:
            row = run_one(name, kwargs, X, Y, T)
            row["targets"] = targets
            result["runs"].append(row)
    result["load_average_end"] = os.getloadavg()[0]
    result["total_s"] = round(time.perf_counter() - t_all)
    os.makedirs(os.path.dirname(JSON_PATH), exist_ok=True)
    with open(JSON_PATH, "w") as f:
        json.dump(result, f, indent=1)
    render(result)


def table(result: dict) -> str:
    lines = [
        "| targets | construction | hidden layers | width (min..max) | weights | dense params of "
        "`to_sequential()` | build | max abs error, `forward` | max abs error, literal network | "
        "predict = labels |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in result["runs"]:
        w = r["widths"]
        width = f"{w[0]:,}" if w[0] == w[1] else f"{w[0]:,}..{w[1]:,}"
        lines.append(
            f"| {r['targets']} | {r['construction']} | {r['depth']} | {width} | {r['weights']:,} | "
            f"{r['dense_parameters']:,} | {r['build_s']:.1f} s | {r['max_err_forward']:.1e} | "
            f"{r['max_err_literal']:.1e} | {'yes' if r['predict_ok'] else 'no'} |"
        )
    return "\n".join(lines)


def handling(result: dict) -> str:
    data = result["data"]
    lines = [
        f"Data: n = {data['n']:,} training images, d = {data['d']}; {data['duplicate_rows']} duplicate rows and "
        f"{data['constant_columns']} columns constant over all images in this copy.",
        "",
    ]
    for r in result["runs"]:
        if "slabs" in r:
            s = r["slabs"]
            lines.append(
                f"- slabs, {r['targets']}: {s['groups']} groups ({r['neurons']} neurons; 4 ceil(n/d) = "
                f"{4 * -(-data['n'] // data['d'])}, so {r['neurons'] / (4 * -(-data['n'] // data['d'])):.2f}x that), d' = {s['d_eff']} non-constant columns, "
                f"{s['duplicates_removed']} duplicate rows removed, {s['rounds']} rounds with group sizes "
                f"{s['group_sizes_tried']}; groups rejected: {s['rejected_singular']} rank-deficient or "
                f"singular, {s['rejected_margin']} on the margin check, {s['rejected_rounding']} on the "
                f"rounding check, {s['rejected_after_assembly']} after assembly, {s['rejected_overflow']} "
                "on overflow."
            )
        elif r["construction"] == "Theorem 1":
            lines.append(
                f"- Theorem 1 and depth k, {r['targets']}: {r['distinct_nodes']:,} distinct nodes "
                "(identical rows share one; constant columns need no handling: they add the same "
                "amount to every projection)."
            )
    return "\n".join(lines)


def render(result: dict) -> None:
    head = (
        f"Command: `{result['command']}` (from the repository root, after building the extension "
        f"in place; about {result['total_s'] // 60 + 1} minutes).\n\n"
        f"machine: {result['machine']} (torch threads set to {result['threads']} by the script). "
        f"The machine was shared with other jobs (load average {result['load_average_start']:.1f} at "
        f"the start, {result['load_average_end']:.1f} at the end): build times are single wall-clock "
        "runs, comparable only roughly.\n"
    )
    body = table(result) + "\n\n" + handling(result) + "\n"
    with open(RESULTS_PATH, "w") as f:
        f.write("# Memorization constructions on Fashion-MNIST: `bench_constructions.py`\n\n")
        f.write(head + "\n" + body)
        f.write(
            "\nErrors are max |f(x_i) - y_i| over all training points with one-hot targets; the "
            "literal network is the one ``to_sequential()`` builds (Theorem 1 and depth k: evaluated "
            "from the projection without the dense matrices, see the script's docstring).\n"
        )
    with open(DOCS_PATH, "w") as f:
        f.write(DOCS_INTRO)
        f.write("\n## Side by side (generated from docs/results/constructions.json)\n\n")
        f.write(head + "\n" + body)
    print(f"wrote {RESULTS_PATH} and {DOCS_PATH}")


DOCS_INTRO = """# Exact memorization constructions

`rethink.interpolate(X, Y, ...)` builds a ReLU network that reproduces a sample exactly,
three ways. All are float64 on the device of X and all return the same interface:
`forward` (float64 outputs), `predict` (argmax for class labels), `num_weights`,
`hidden_widths`, `to_sequential()` (a plain `nn.Sequential` of `Linear`/`ReLU`).

- **Theorem 1** (`depth=1`, the default; `rethink.expressivity`): f(x) = sum_j w_j relu(<a, x> - b_j),
  one direction a, breakpoints interleaved with the sorted projections, 2n + d weights
  (d + n + nK with K outputs). `forward` evaluates f by segments: exact at the training points.
- **Depth k** (`depth=k`; `rethink.depth`): the paper's appendix claim that depth k with width
  O(n/k) suffices. The same function as Theorem 1, telescoped into k blocks of about n/k
  consecutive projections, one block per hidden layer; the projection and the running sum
  travel between layers as ReLU pairs. Width about n/k + 2K + 3, about d + (2 + 2K) n
  weights (exact formula in `DeepInterpolatingNet`). `forward` is Theorem 1's segment form;
  `forward_layers` evaluates the literal layered network without dense matrices.
- **Slabs** (`method="slabs"`; `rethink.slabs`): Baum's construction in the ReLU form of
  Bubeck, Eldan, Lee and Mikulincer (2020). Groups of up to d points, a hyperplane through
  each group, and per group 4 ReLUs forming two thin tilted slabs that give the group's
  targets on its points and 0 at every other point (2 + 2K ReLUs for K real outputs; class
  labels use one-class groups and a flat-top slab of 4 ReLUs). At least 4 ceil(n/d) neurons
  in one hidden layer, more where groups fail a check and are split (the runs below give
  the ratio). Every slab's margin to every other point and its output at every point
  are checked; failing groups are regrouped smaller. Duplicate rows are removed (conflicting
  targets raise), constant columns dropped; nothing is perturbed. Exact up to
  `SLAB_TOLERANCE` = 1e-7 max |y|, checked before returning.
"""


if __name__ == "__main__":
    main()
