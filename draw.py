"""
draw.py — see what growth and merging did to the weights, drawn from the model's own numbers.

Place in the story: beside scale.py and merge.py, which call it when asked
(`--draw=FILE.png`); also `python draw.py --before=A --after=B --out=FILE.png`
for any two checkpoints (a grown model before and after training shows what training
moved, and that a frozen block did not). Nothing here knows a growth method:
it reads two state dicts and says, block by block, what the second is in
terms of the first, from the numbers alone:

    0          every entry is zero              W         the base's block, unchanged
    W/n        the base's block divided by n    W/n ± N   that, plus the clones' noise
    new        weights the base never had       moved     trained away from its start

and outlines what the checkpoint marks frozen. A large matrix is drawn as the
first K rows and columns of each of its blocks, as the figure says.
"""

import os

import torch

from checkpoint import load_checkpoint
from plumbing.cli import UserError, parse_flags, parser, run_cli, writable_file

K = 16  # rows and columns drawn of each block
# a block's matrices, and a LayerNorm: its bias (centred on 0 like the weights; its gain sits near 1)
TENSORS = ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight", "ln_1.bias"]
COLUMNS = ("lm_head", "transformer.wte", "transformer.wpe")  # a row per token: a new stream adds columns
CMAP = "RdBu_r"  # diverging, centred on zero, and told apart by readers with red-green colour blindness


# ----------------------------------------------------------------------------
# what a block is, in terms of the base's


def describe(cell, base_cell, frozen=False, trained_from=None):
    """The label of one block of a grown (or trained) tensor, read from its numbers."""
    if trained_from is not None:
        return ("frozen, " if frozen else "") + ("unchanged" if torch.equal(cell, trained_from) else "moved")
    if not cell.any():
        return "0"
    if base_cell is None or base_cell.shape != cell.shape:
        return "new"
    if torch.equal(cell, base_cell):
        return "W, frozen" if frozen else "W"
    size = base_cell.double().norm().item() or 1.0
    gaps = {n: (cell.double() * n - base_cell.double()).norm().item() / size for n in range(1, 9)}
    n = min(gaps, key=gaps.get)  # the n that makes n x this block closest to the base's
    if gaps[n] <= 1e-6:  # equal up to rounding
        return f"W/{n}" if n > 1 else "W"
    if gaps[n] <= 0.7:  # nearer W/n than a fresh initialisation would be: W/n plus a small noise
        return f"W/{n} ± N" if n > 1 else "W ± N"
    return "new"


def split(n, pieces):
    """[(start, stop)] of `pieces` equal segments of range(n)."""
    size = n // pieces
    return [(i * size, (i + 1) * size) for i in range(pieces)]


def assembled(grown, name):
    """SCALE's block form of a tensor whose new parts are separate tensors (model_scale.py):
    [[W, W12], [W21, W22]] as one matrix, with its row and column segments; None if it has none."""
    stem, kind = name.rsplit(".", 1)  # transformer.h.0.mlp.c_fc, weight
    W, U, W12 = grown.get(name), grown.get(f"{stem}_u.{kind}"), grown.get(f"{stem}_12.{kind}")
    if W is None or (U is None and W12 is None):
        return None
    if stem in COLUMNS:  # one row a token: the second stream's columns come after the base's
        return torch.cat([W, U], dim=1), [(0, len(W))], [(0, W.shape[1]), (W.shape[1], W.shape[1] + U.shape[1])]
    if W.dim() == 1:  # a second stream's LayerNorm: its own coordinates after the base's
        return torch.cat([W, U]), [(0, len(W)), (len(W), len(W) + len(U))], [(0, 1)]
    o, i = W.shape
    iu = U.shape[1] - i if U is not None else W12.shape[1]
    top = torch.cat([W, W12 if W12 is not None else torch.zeros(o, iu, dtype=W.dtype)], dim=1)
    full = top if U is None else torch.cat([top, U], dim=0)
    rows = [(0, o)] + ([(o, o + U.shape[0])] if U is not None else [])
    return full, rows, [seg for seg in [(0, i), (i, i + iu)] if seg[1] > seg[0]]


def layout(base, grown, name, frozen=None, trained=False):
    """{"matrix", "rows", "cols", "cells": {(r, c): (label, (row slice, col slice), the base's block)}}:
    the grown tensor cut into blocks, each described against the base's block it came from (with
    `trained`, against the same block before training)."""
    B, G = base.get(name), grown[name]
    if B is None:  # a tensor the base does not have (SCALE-Route's gate)
        B = G.new_zeros(0)
    whole_frozen = (frozen or {}).get(name) is True
    blockform = assembled(grown, name)
    thirds = 3 if name.endswith("c_attn.weight") else 1  # q, k and v are cloned one at a time
    if blockform is not None:  # SCALE / ffn: the top-left block is the base's W, the rest is new
        M, rows, cols = blockform
        before = assembled(base, name) if trained else None
        twins = {(0, 0): B} if before is None else {
            (r, c): before[0][a:b, x:y] if before[0].dim() == 2 else before[0][a:b, None]
            for r, (a, b) in enumerate(rows) for c, (x, y) in enumerate(cols)}
        frozen_cells = {(0, 0)} if whole_frozen else set()
    elif B.numel() == 0:
        M, rows, cols, twins, frozen_cells = G, [(0, G.shape[0])], [(0, G.shape[1] if G.dim() == 2 else 1)], {}, set()
    elif G.shape == B.shape:  # depth, solar, or training: the same tensor, block for block
        M, rows, cols = G, split(G.shape[0], thirds), [(0, G.shape[1] if G.dim() == 2 else 1)]
        twins = {(r, 0): B[a:b] for r, (a, b) in enumerate(rows)}
        frozen_cells = set(twins) if whole_frozen else set()
    else:  # HyperCloning: every dimension n times
        n_r = G.shape[0] // B.shape[0]
        n_c = G.shape[1] // B.shape[1] if G.dim() == 2 else 1
        M, rows = G, split(G.shape[0], thirds * n_r)
        cols = split(G.shape[1], n_c) if G.dim() == 2 else [(0, 1)]
        base_rows = split(B.shape[0], thirds)
        twins = {(r, c): B[slice(*base_rows[r // n_r])] for r in range(len(rows)) for c in range(len(cols))}
        frozen_cells = set(twins) if whole_frozen else set()
    M = M[:, None] if M.dim() == 1 else M
    names = {}  # SCALE's names of the blocks of [[W, W12], [W21, W22]]; a head's second stream
    if blockform is not None and M.shape[1] > 1:
        names = {(0, 0): "W", (0, 1): "new stream"} if name.rsplit(".", 1)[0] in COLUMNS else \
            {(0, 0): "W", (0, 1): "W12", (1, 0): "W21", (1, 1): "W22"}
    cells = {}
    for r, (r0, r1) in enumerate(rows):
        for c, (c0, c1) in enumerate(cols):
            twin = twins.get((r, c))
            twin = twin[:, None] if twin is not None and twin.dim() == 1 else twin
            label = describe(M[r0:r1, c0:c1], twin, (r, c) in frozen_cells, trained_from=twin if trained else None)
            if (r, c) in names and not label.startswith("W"):
                label = f"{names[r, c]}: {label}"
            cells[r, c] = (label, (slice(r0, r1), slice(c0, c1)), twin)
    return {"matrix": M, "rows": rows, "cols": cols, "cells": cells}


def view(lay, k=K):
    """The first k rows and columns of every block, joined: what is drawn of a large matrix."""
    rows = [range(a, min(b, a + k)) for a, b in lay["rows"]]
    cols = [range(a, min(b, a + k)) for a, b in lay["cols"]]
    M = lay["matrix"].float()
    return M[[i for r in rows for i in r]][:, [j for c in cols for j in c]], [len(r) for r in rows], \
        [len(c) for c in cols]


# ----------------------------------------------------------------------------
# the layer stack (depth and SOLAR)


def stack(base, grown):
    """[(grown block j, base block it copies or None, starts as identity)], matching blocks by their
    c_attn weights; an identity block writes nothing into the residual stream (its c_proj is 0)."""
    def blocks(sd):
        return sorted({int(k.split(".")[2]) for k in sd if k.startswith("transformer.h.")})
    out = []
    for j in blocks(grown):
        key = f"transformer.h.{j}.attn.c_attn.weight"
        source = next((i for i in blocks(base) if torch.equal(base[f"transformer.h.{i}.attn.c_attn.weight"], grown[key])),
                      None)
        silent = not grown[f"transformer.h.{j}.attn.c_proj.weight"].any() and \
            not grown[f"transformer.h.{j}.mlp.c_proj.weight"].any()
        out.append((j, source, silent))
    return out


# ----------------------------------------------------------------------------
# figures


def scale_of(arrays):
    """One colour scale for every panel: the 99th percentile of |value|, so one outlier cannot wash out
    the picture (larger values are drawn at full colour)."""
    values = torch.cat([a.abs().flatten() for a in arrays])
    return max(torch.quantile(values[:100_000], 0.99).item(), 1e-8)


def draw_matrix(ax, lay, title, vmax, k=K):
    """One tensor as a heatmap, its blocks outlined and labelled; returns the image for the colour bar."""
    from matplotlib.patches import Rectangle
    M, heights, widths = view(lay, k)
    im = ax.imshow(M.numpy(), cmap=CMAP, vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
    ys, xs = [0], [0]
    for h in heights:
        ys.append(ys[-1] + h)
    for w in widths:
        xs.append(xs[-1] + w)
    for (r, c), (label, *_) in lay["cells"].items():
        x0, y0, w, h = xs[c] - 0.5, ys[r] - 0.5, widths[c], heights[r]
        frozen = "frozen" in label
        ax.add_patch(Rectangle((x0, y0), w, h, fill=False, lw=3 if frozen else 1, ec="black",
                               ls="-" if frozen else "--"))
        ax.text(x0 + w / 2, y0 + h / 2, label, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def draw_stack(ax, layers, n_base):
    """The base's blocks on the left, the grown model's on the right, a line from each copy to its source."""
    ax.set_xlim(0, 3)
    ax.set_ylim(max(n_base, len(layers)) + 0.5, -1)
    ax.axis("off")
    for i in range(n_base):
        ax.text(0.5, i, f"block {i}", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="#dddddd", ec="black"))
    for j, source, silent in layers:
        what = "new" if source is None else f"copy of {source}" + (", starts as identity" if silent else "")
        ax.text(2.3, j, f"{j}: {what}", ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="#c6dbef" if silent else "white", ec="black"))
        if source is not None:
            ax.plot([0.85, 1.55], [source, j], color="grey", lw=0.8)
    used = {s for _, s, _ in layers}
    dropped = [i for i in range(n_base) if i not in used]
    ax.set_title("layers: base → grown" + (f" (base blocks {dropped} dropped)" if dropped else ""), fontsize=9)


def draw_growth(base, grown, path, title, frozen=None, block=None, trained=False):
    """The figure of a growth (or of training): a block's matrices, base | grown, on one colour scale;
    the layer stack first when the number of blocks changed. Returns the layouts drawn (for the tests)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = stack(base, grown)
    n_base = len({k.split(".")[2] for k in base if k.startswith("transformer.h.")})
    deeper = len(layers) != n_base
    if block is None:  # the block most worth seeing: an identity copy, else the first
        block = next((j for j, _, silent in layers if silent), 0)
    source = next((s for j, s, _ in layers if j == block), None)
    source = block if source is None or not deeper else source
    tensors = [t if f"transformer.h.{block}.{t}" in grown else t.replace(".bias", ".weight") for t in TENSORS]
    pairs = [(f"transformer.h.{source}.{t}", f"transformer.h.{block}.{t}") for t in tensors]
    head = "lm_head.weight" if "lm_head.weight" in grown else "transformer.wte.weight"  # a tied head is wte
    pairs.append(("lm_head.weight" if "lm_head.weight" in base else "transformer.wte.weight", head))
    pairs += [(None, "router.weight")] * ("router.weight" in grown)  # SCALE-Route's gate: the base has none
    base_view = {g: base[b] for b, g in pairs if b is not None}
    lays = {g: layout(base_view, grown, g, frozen, trained) for _, g in pairs}
    olds = {g: layout(base_view, base_view, g) for b, g in pairs if b is not None}
    for lay in olds.values():  # the base's own blocks are named, not described
        names = ["W_q", "W_k", "W_v"] if len(lay["cells"]) == 3 else ["W"]
        lay["cells"] = {rc: (names[rc[0]], where, twin) for rc, (_, where, twin) in lay["cells"].items()}
    vmax = scale_of([view(lay)[0] for g, lay in [*lays.items(), *olds.items()] if ".h." in g])  # the block's
    stack_height = 0.3 * max(n_base, len(layers)) + 0.6 if deeper else 0  # inches: a line a layer
    heights = [stack_height] * deeper + [1.9] * len(pairs)
    fig = plt.figure(figsize=(10, sum(heights) + 0.8), dpi=100)
    grid = fig.add_gridspec(len(heights), 2, width_ratios=[1, 2], height_ratios=heights, hspace=0.45, wspace=0.08)
    if deeper:
        draw_stack(fig.add_subplot(grid[0, :]), layers, n_base)
    for r, (b, g) in enumerate(pairs, start=deeper):
        short, where = (g.split(f"h.{block}.")[1], f" block {block}") if ".h." in g else (g, "")
        if b is None:
            fig.add_subplot(grid[r, 0]).axis("off")
        else:
            draw_matrix(fig.add_subplot(grid[r, 0]), olds[g], f"base{where and f' block {source}'}: {short}", vmax)
        im = draw_matrix(fig.add_subplot(grid[r, 1]), lays[g], f"{'after' if trained else 'grown'}{where}: {short}",
                         vmax)
    fig.colorbar(im, ax=fig.axes, shrink=0.6, label="weight value")
    fig.suptitle(f"{title}\n(first {K} rows and columns of each block; dashed: a block, thick: frozen; "
                 "values past the colour bar at full colour)", fontsize=10)
    save(fig, path)
    return lays


def draw_steps(rows, path, title):
    """A computation step by step: rows [(what, [(title, 2-D tensor)])], each row of heatmaps on its own
    colour scale (weights and task vectors differ by orders of magnitude); a bool tensor is a mask."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = max(len(panels) for _, panels in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(10, 2.3 * len(rows) + 0.6), dpi=100, squeeze=False)
    for ax_row, (what, panels) in zip(axes, rows):
        values = [t for _, t in panels if t.dtype != torch.bool]
        vmax = scale_of([t.float() for t in values]) if values else 1.0
        im = None
        for ax in ax_row[len(panels):]:
            ax.axis("off")
        for ax, (name, t) in zip(ax_row, panels):
            if t.dtype == torch.bool:  # a mask: black where true
                ax.imshow(t.float().numpy(), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
                name += f"\n(black: {t.float().mean().item():.0%})"
            else:
                im = ax.imshow(t.float().numpy(), cmap=CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(what, fontsize=9)
        if im is not None:
            fig.colorbar(im, ax=list(ax_row), shrink=0.8)
    fig.suptitle(title, fontsize=10)
    save(fig, path)


def save(fig, path):
    """Write the figure atomically, and close it."""
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------


def same_shapes(a, b):
    """True when b has a's tensors with a's shapes and nothing else: b is a trained a, not a grown one."""
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)


def main(argv=None):
    p = parser("draw.py", "Draw what lies between two checkpoints: a growth, or what training moved.")
    p.add_argument("--before", required=True, help="the earlier checkpoint (the base, or a grown model before training)")
    p.add_argument("--after", required=True, help="the later one (the grown model, or the same model trained)")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--block", type=int, help="which block of --after to draw (default: a new one, else 0)")
    args = parse_flags(p, argv)
    writable_file(args.out, "--out")
    a, b = load_checkpoint(args.before), load_checkpoint(args.after)
    trained = same_shapes(a["model"], b["model"])
    blocks = len({k.split(".")[2] for k in b["model"] if k.startswith("transformer.h.")})
    if args.block is not None and not 0 <= args.block < blocks:
        raise UserError(f"--block={args.block}: {args.after} has blocks 0 to {blocks - 1}")
    what = "what training moved" if trained else "what growth made"
    draw_growth(a["model"], b["model"], args.out, f"{what}: {args.before} → {args.after}",
                frozen=b.get("frozen"), block=args.block, trained=trained)
    print(f"drew {args.out}")


if __name__ == "__main__":
    run_cli(main)
