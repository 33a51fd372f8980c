"""
exercises/checks.py — what exercises/check.py checks: one function per exercise of EXERCISES.md.

Each check_N(m) takes the module with the student's functions (exercises/student.py,
or the reference solutions) and returns a line of numbers, or raises Fail saying
what differs. The checks build their own inputs, so they run in seconds.
"""


import importlib.util
import json
import os
import tempfile

import torch
from torch.nn import functional as F

import merge
import scale
from model import GPT, GPTConfig
from model_scale import new_model

TAUS = [[0.4, -0.1, 0.3, -0.2], [-0.5, 0.2, 0.1, -0.3], [0.1, 0.3, -0.4, 0.05]]  # exercise 6


N_EXERCISES = 15


class Fail(Exception):
    pass


def expect(ok, message):
    if not ok:
        raise Fail(message)


def small_model(seed=0, **kw):
    """A 2-layer model with random (not freshly initialised) biases and LayerNorms."""
    torch.manual_seed(seed)
    model = new_model({**dict(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=32), **kw})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def your_run(path, describe):
    return describe() if os.path.exists(path) else f"(run the exercise's command to see your own {path})"


def check_1(m):
    for L, C, V, T in [(4, 128, 256, 128), (6, 384, 50257, 256), (2, 32, 50, 16)]:
        truth = GPT(GPTConfig(n_layer=L, n_head=4, n_embd=C, vocab_size=V, block_size=T)).num_params()
        got = m.n_params(L, C, V, T)
        expect(got == truth, f"n_params({L}, {C}, {V}, {T}) = {got:,}, model.py counts {truth:,}")
    return "all three configurations counted exactly (e.g. 4 x 128 on bytes: 842,496)"


def check_2(m):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "log.jsonl")
        with open(path, "w") as f:
            for i, (en, ko) in enumerate([(1.8, 5.0), (2.4, 3.1), (2.6, 2.7)]):
                f.write(json.dumps({"iter": i * 100, "loss": {"english": en, "korean": ko}}) + "\n")
        got = m.forgetting(path)
    expect(abs(got["english_rise"] - 0.8) < 1e-9 and abs(got["korean_drop"] - 2.3) < 1e-9,
           f"on a log going English 1.8 -> 2.6, Korean 5.0 -> 2.7 you return {got}")
    return "your run: " + your_run("out/ex2/log.jsonl", lambda: str(m.forgetting("out/ex2/log.jsonl")))


def check_3(m):
    base = small_model()
    sd, margs = base.state_dict(), dict(base.config.__dict__)
    sd.pop("lm_head.weight")
    margs_ref, ref, _ = scale.grow_depth(sd, margs, every=1, top=0)
    result = m.depth_without_zero_init(sd, margs)
    expect(isinstance(result, tuple) and len(result) == 2,
           f"depth_without_zero_init returns {type(result).__name__}"
           + (f" of {len(result)} values" if isinstance(result, tuple) else "")
           + ": return (model_args, state_dict), two values (grow_depth returns three: drop the frozen names)")
    got_args, got = result
    expect(got_args == margs_ref, f"step 1 (grow_depth's layout): model_args {got_args} differ from grow_depth's "
           f"{margs_ref}")
    for k, v in ref.items():
        block = int(k.split(".")[2]) if k.startswith("transformer.h.") else None
        new_proj = ".c_proj." in k and block is not None and block % 2 == 1  # copies sit at 1, 3, 5, ...
        want = sd[k.replace(f"h.{block}.", f"h.{block // 2}.")] if new_proj else v
        expect(k in got, f"step 1 (grow_depth's layout): {k} is missing from your state dict")
        step = "step 2 (give back c_proj)" if new_proj else "step 1 (grow_depth's layout)"
        expect(isinstance(got[k], torch.Tensor) and got[k].shape == want.shape,
               f"{step}: {k} has shape {tuple(getattr(got[k], 'shape', ()))}, expected {tuple(want.shape)}")
        if new_proj and not torch.equal(got[k], want):
            expect(not bool((got[k] == 0).all()), f"{step}: {k} is still zero: the copy at block {block} kept "
                   f"grow_depth's zero init; give it back block {block // 2}'s {k.split('.', 3)[3]}")
        if not torch.equal(got[k], want):
            i = int((got[k].float() - want.float()).abs().flatten().argmax())
            expect(False, f"{step} first differs at {k}" + (f" (block {block // 2}'s, the block it copies)" if new_proj
                                                            else "") +
                   f", entry {i}: yours {got[k].flatten()[i].item():.4g}, expected {want.flatten()[i].item():.4g}")
    grown = new_model(got_args)
    grown.load_state_dict(got, strict=False)
    idx = torch.randint(64, (4, 16))
    gap = (grown.double()(idx)[0] - base.double()(idx)[0]).abs().max().item()
    expect(gap > 1e-3, f"the gap is only {gap:.2e}: the new blocks still add nothing")
    return f"without the zero init the logits move by up to {gap:.3f} (with it: 0)"


def check_4(m):
    torch.manual_seed(0)
    x, x_u = torch.randn(3, 5, 32), torch.randn(3, 5, 16)
    w, b = torch.randn(48), torch.randn(48)
    y, y_u = m.joint_layer_norm(x, x_u, w, b)
    ref = F.layer_norm(torch.cat([x, x_u], -1), (48,), w, b, 1e-5)
    expect(torch.allclose(torch.cat([y, y_u], -1), ref, atol=1e-5), "joint_layer_norm is not a LayerNorm over [x ; x_u]")
    x = x - x.mean(-1, keepdim=True)
    joint = m.joint_layer_norm(x, torch.zeros(3, 5, 16), torch.ones(48), torch.zeros(48))[0]
    ratio = (joint / F.layer_norm(x, (32,), eps=1e-5)).mean().item()
    expect(abs(m.zero_stream_factor(32, 16) - ratio) < 1e-3,
           f"zero_stream_factor(32, 16) = {m.zero_stream_factor(32, 16):.4f}, measured {ratio:.4f}")
    gap = (joint - F.layer_norm(x, (32,), eps=1e-5)).abs().max().item()
    return f"one LayerNorm over both streams scales the old coordinates by {ratio:.4f}; max change {gap:.3f}"


def check_5(m):
    torch.manual_seed(0)
    W, h = torch.randn(50, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    logits = h @ W.T
    msgs = []
    for n in (2, 3):
        got = m.clone_head(W, n)
        expect(tuple(got.shape) == (50, 8 * n), f"clone_head(W, {n}) has shape {tuple(got.shape)}")
        expect(torch.allclose(h.repeat(1, n) @ got.T, logits, atol=1e-12), f"clone_head(W, {n}) changes the logits")
        measured = (h.repeat(1, n) @ W.repeat(1, n).T - logits).abs().max().item()
        predicted = m.gap_without_division(logits, n)
        expect(abs(predicted - measured) < 1e-9 * max(1, measured),
               f"n={n}: gap_without_division says {predicted:.4f}, measured {measured:.4f}")
        msgs.append(f"n={n}: gap {measured:.2f}")
    return "head preserved; without the 1/n: " + ", ".join(msgs)


def ties_steps(taus, count_agreeing=True, sign_by_mass=True):
    """TIES on the hand example, step by step: (trimmed, elected sign, merged). The switches give the
    two usual mistakes: dividing by the number of models, electing the sign by a vote count."""
    trimmed = [merge.trim(t, *merge.kth_largest([merge.magnitude(t)], 2))[0] for t in taus]
    votes = torch.stack(trimmed).sum(0) if sign_by_mass else torch.stack([t.sign() for t in trimmed]).sum(0)
    sign = torch.where(votes >= 0, 1.0, -1.0).double()
    agree = [(t.sign() == sign).double() for t in trimmed]
    total = sum(a * t for a, t in zip(agree, trimmed))
    n = sum(agree) if count_agreeing else torch.full_like(total, len(taus))
    return trimmed, sign, torch.where(n > 0, total / n.clamp(min=1e-300), torch.zeros_like(total))


def numbers(value, n):
    """value as a float64 tensor of n numbers, or None if it is not a list of n numbers."""
    ok = isinstance(value, (list, tuple)) and len(value) == n and all(isinstance(v, (int, float)) for v in value)
    return torch.tensor(value, dtype=torch.float64) if ok else None


def first_difference(yours, expected):
    """The first coordinate where a step's numbers differ, or None."""
    bad = ~torch.isclose(yours, expected, atol=1e-9)
    return int(bad.nonzero()[0]) if bad.any() else None


def check_6(m):
    taus = [torch.tensor(t, dtype=torch.float64) for t in TAUS]
    models = [{"w": t} for t in taus]
    ref = merge.merge_state_dicts({"w": torch.zeros(4, dtype=torch.float64)}, models, "ties", density=0.5)["w"]
    trimmed, sign, merged = ties_steps(taus)
    assert torch.allclose(merged, ref)  # the checker's own steps are merge.py's
    answer = m.ties_by_hand()
    expect(isinstance(answer, dict) and {"trimmed", "sign", "merged"} <= set(answer),
           f"ties_by_hand returns {str(answer)[:80]}: return a dict with the steps \"trimmed\", \"sign\" and \"merged\"")
    got_trimmed = answer["trimmed"] if isinstance(answer["trimmed"], (list, tuple)) else []
    got_trimmed = [numbers(t, 4) for t in got_trimmed]
    expect(len(got_trimmed) == 3 and all(t is not None for t in got_trimmed),
           f"\"trimmed\" is {str(answer['trimmed'])[:80]}: give three lists of 4 numbers, one per task vector")
    for i, (yours, want) in enumerate(zip(got_trimmed, trimmed)):
        j = first_difference(yours, want)
        expect(j is None, f"step 1 (trim) first differs at τ{i + 1}, coordinate {j}: yours {yours.tolist()}, expected "
               f"{want.tolist()} (keep each vector's 2 largest magnitudes, zero the other 2)")
    got_sign = numbers(answer["sign"], 4)
    expect(got_sign is not None, f"\"sign\" is {str(answer['sign'])[:80]}: give 4 numbers, +1 or -1")
    j = first_difference(got_sign, sign)
    if j is not None:
        hint = "you counted votes; TIES elects by the summed mass" if torch.equal(
            got_sign, ties_steps(taus, sign_by_mass=False)[1]) else "elect by the summed mass of the trimmed values"
        expect(False, f"step 2 (elect the sign) first differs at coordinate {j}: yours {got_sign[j].item():+g}, expected "
               f"{sign[j].item():+g}: the trimmed values {[t[j].item() for t in trimmed]} sum to "
               f"{sum(t[j].item() for t in trimmed):+.2f} ({hint})")
    got = numbers(answer["merged"], 4)
    expect(got is not None, f"\"merged\" is {str(answer['merged'])[:80]}: give 4 numbers, one per coordinate")
    j = first_difference(got, ref)
    if j is not None:
        hint = "average the trimmed values that agree with the elected sign"
        if torch.allclose(got, ties_steps(taus, count_agreeing=False)[2], atol=1e-9):
            hint = "you divided by the number of models (3); TIES averages over the models that agree with the sign"
        elif torch.allclose(got, ties_steps(taus, sign_by_mass=False)[2], atol=1e-9):
            hint = "this is the merge with signs elected by counting votes; TIES elects them by the summed mass"
        expect(False, f"step 3 (disjoint mean) first differs at coordinate {j}: yours {got[j].item():g}, expected "
               f"{ref[j].item():g} ({hint})")
    return f"every step agrees with merge.py: {ref.tolist()}"


def check_7(m):
    torch.manual_seed(0)
    tau = torch.randn(1000, dtype=torch.float64)
    result = m.dare(tau, 0.3, torch.Generator().manual_seed(5))
    expect(isinstance(result, tuple) and len(result) == 2,
           f"dare returns {type(result).__name__}: return its two steps, (keep, result)")
    keep, a = result
    expect(isinstance(keep, torch.Tensor) and keep.dtype == torch.bool and keep.shape == tau.shape,
           f"step 1 (drop): keep is {type(keep).__name__}"
           f"{f' {keep.dtype} of shape {tuple(keep.shape)}' if isinstance(keep, torch.Tensor) else ''}: "
           f"return a bool tensor of tau's shape {tuple(tau.shape)}")
    expect(isinstance(a, torch.Tensor) and a.shape == tau.shape,
           f"step 2 (rescale): the result is {type(a).__name__}"
           f"{f' of shape {tuple(a.shape)}' if isinstance(a, torch.Tensor) else ''}: return a tensor of tau's shape")
    again = m.dare(tau, 0.3, torch.Generator().manual_seed(5))
    expect(torch.equal(keep, again[0]) and torch.equal(a, again[1]), "not reproducible with one seed: draw with gen")
    frac = keep.double().mean().item()
    expect(abs(frac - 0.3) < 0.05, f"step 1 (drop): keeps {frac:.2f} of the entries, expected about 0.3 (each one "
           "with probability density)")
    dropped = (~keep & (a != 0)).nonzero()
    if len(dropped):
        i = int(dropped[0])
        expect(False, f"step 2 (rescale) first differs at entry {i}: dropped, so expected 0, yours {a[i].item():.4g}")
    wrong = (keep & ~torch.isclose(a, tau / 0.3)).nonzero()
    if len(wrong):
        i = int(wrong[0])
        hint = "not rescaled" if torch.isclose(a[i], tau[i]) else \
            "multiplied by the density instead of dividing" if torch.isclose(a[i], tau[i] * 0.3) else "rescale by 1 / density"
        expect(False, f"step 2 (rescale) first differs at kept entry {i}: yours {a[i].item():.4g}, expected "
               f"tau / density = {tau[i].item() / 0.3:.4g} ({hint})")
    mean = sum(m.dare(tau, 0.3, torch.Generator().manual_seed(s))[1] for s in range(400)) / 400
    err = ((mean - tau).abs().mean() / tau.abs().mean()).item()
    expect(err < 0.1, f"the mean over 400 seeds is off by {err:.0%} of |tau|: the expectation is not tau")
    return f"kept {frac:.1%}; mean over 400 seeds within {err:.1%} of tau"


def check_8(m):
    points = {"a": (0.1, 2.0), "b": (0.2, 1.8), "c": (0.15, 2.1), "d": (0.3, 1.8), "e": (0.1, 2.0)}
    got = m.pareto_front(points)
    expect(got == ["a", "b", "e"], f"pareto_front gives {got}; expected ['a', 'b', 'e']")
    return "your sweep's front: " + your_run("out/exercises/replay.json", lambda: str(m.pareto_front(
        {k: tuple(v) for k, v in json.load(open("out/exercises/replay.json"))["points"].items()})))


def check_9(m):
    results = [dict(density=d, **{"lambda": lam}, korean=k, german=g) for d, lam, k, g in
               [(0.5, 0.5, 2.75, 3.25), (0.2, 1.0, 3.0, 3.0), (0.5, 1.0, 2.5, 3.75), (0.8, 1.5, 3.5, 2.625)]]
    got = m.best_merge(results)
    expect(got is results[1] or got == results[1], f"best_merge picks {got}; expected density 0.2, lambda 1.0")
    own, other = {"korean": 2.0, "german": 2.0}, {"korean": 12.0, "german": 4.0}
    for merged, want in [({"korean": 2.0, "german": 4.0}, 0.0), ({"korean": 4.5, "german": 2.5}, 0.75),
                         ({"korean": 7.0, "german": 2.0}, 0.5)]:
        got = m.least_kept(merged, own, other)
        expect(got is not None and abs(got - want) < 1e-12, f"least_kept({merged}, ...) = {got}, expected {want}")
    return "your sweep's best: " + your_run("out/exercises/ties.json", lambda: str(m.best_merge(
        json.load(open("out/exercises/ties.json")))))


def check_10(m):
    log = [{"tokens": t, "loss": {"korean": k}} for t, k in [(0, 3.0), (100, 2.5), (200, 2.0), (300, 1.8)]]
    for target, want in [(2.2, 160.0), (2.5, 100.0), (3.5, 0), (1.5, None)]:
        got = m.tokens_to_reach(log, target)
        expect(got == want if want is None else got is not None and abs(got - want) < 1e-9,
               f"tokens_to_reach(log, {target}) = {got}, expected {want}")

    def yours():
        runs = json.load(open("out/exercises/factor.json"))
        target = max(log[-1]["loss"]["korean"] for log in runs.values())
        return ", ".join(f"{k}: {m.tokens_to_reach(log, target)}" for k, log in runs.items()) + f" (to {target:.3f})"
    return "your sweep: " + your_run("out/exercises/factor.json", yours)


def check_11(m):
    tau = torch.tensor([0.9, -0.1, 0.5, -0.7, 0.2, 0.05, -0.3, 0.4, 0.0, 0.6])
    got = m.breadcrumbs(tau, 0.4, 0.2)
    want = torch.tensor([0, 0, 0.5, 0, 0, 0, -0.3, 0.4, 0, 0.6])
    expect(torch.equal(got, want), f"breadcrumbs(tau, 0.4, 0.2) = {got.tolist()}, expected {want.tolist()}")
    got = m.breadcrumbs(torch.tensor([0.5, 0.5, 0.5, 0.1]), 0.5, 0.25)
    expect(torch.equal(got, torch.tensor([0, 0.5, 0.5, 0])), f"equal magnitudes: got {got.tolist()}")
    base = {"w": torch.zeros(3, 4)}
    models = [{"w": torch.randn(3, 4)}, {"w": torch.randn(3, 4)}]
    merged = m.merge_breadcrumbs(base, models, 1.0, 0.0)
    expect(torch.allclose(merged["w"], (models[0]["w"] + models[1]["w"]) / 2),
           "with gamma 0 and density 1 the merge must be the plain average of the task vectors")
    return "hand examples and the gamma = 0, density = 1 limit agree"


def check_12(m):
    for wd in (0.1, 0.0):
        got, want = m.drift_under_grad_mask(wd), solutions().drift_under_grad_mask(wd)
        expect(isinstance(got, float), f"drift_under_grad_mask returns {type(got).__name__}, expected a float")
        expect(abs(got - want) < 1e-9, f"drift_under_grad_mask({wd}) = {got:.6g}, expected {want:.6g} "
               + ("(weight decay moves masked entries)" if wd else "(no decay: masking is enough)"))
    got = m.drift_when_restored(0.1)
    expect(got == 0, f"drift_when_restored(0.1) = {got:.3g}: frozen must mean bit-identical")
    return f"masking alone: frozen entries moved {m.drift_under_grad_mask(0.1):.4f} under weight decay 0.1; restored: 0"


def check_13(m):
    gap0 = m.clone_gap_after_training(0.0)
    expect(gap0 == 0, f"without noise the clones must stay exactly equal; clone gap {gap0:.3g}")
    gap = m.clone_gap_after_training(0.01)
    want = solutions().clone_gap_after_training(0.01)
    expect(abs(gap - want) < 1e-6, f"clone gap with noise 0.01: {gap:.6g}, expected {want:.6g}")
    return f"no noise: clone gap 0 after 5 steps; noise 0.01: {gap:.4f}"


def check_14(m):
    model = small_model(n_embd_u=16, n_inner_u=32, route=True)
    with torch.no_grad():
        model.router.weight.normal_(0, 0.5)
    idx = torch.randint(64, (3, 16))
    got, want = m.gate_mean(model, idx), solutions().gate_mean(model, idx)
    expect(isinstance(got, float) and abs(got - want) < 1e-6, f"gate_mean = {got}, expected {want:.6f}")
    report = "out/experiment/results.json"
    return "gate on a random router agrees; the experiment's: " + your_run(report, lambda: ", ".join(
        f"{k}: English {v['english']:.3f}, Korean {v['korean']:.3f}" for k, v in json.load(open(report))["gate"].items()))


def check_15(m):
    model = small_model(n_layer=4)
    margs = dict(block_size=16, vocab_size=64, n_layer=4, n_head=2, n_embd=32)
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    idx = torch.randint(64, (2, 16))
    got = m.preservation_gaps(sd, margs, idx)
    expect(isinstance(got, dict) and set(got) == {"depth", "solar"}, f"expected a dict with depth and solar, got {got}")
    expect(got["depth"] == 0, f"depth must preserve exactly; its gap is {got['depth']:.3g}")
    want = solutions().preservation_gaps(sd, margs, idx)["solar"]
    expect(abs(got["solar"] - want) < 1e-5, f"solar's gap {got['solar']:.5g}, expected {want:.5g}")
    return f"depth 0, solar {got['solar']:.3f} on a small model"


def solutions():
    """The reference solutions, read from this folder whatever `exercises` package a student has on the path."""
    spec = importlib.util.spec_from_file_location("reference_solutions",
                                                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "solutions.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------
# pictures of a student's growth (python exercises/check.py N --draw=FILE.png)


def draw_3(m, path):
    """The student's depth growth beside the base, each block labelled from its numbers."""
    from draw import draw_growth
    base = small_model()
    sd, margs = base.state_dict(), dict(base.config.__dict__)
    sd.pop("lm_head.weight")
    _, grown = m.depth_without_zero_init(sd, margs)
    draw_growth(sd, grown, path, "exercise 3: your depth_without_zero_init", block=1)


def draw_4(m, path):
    """The base's old coordinates through their own LayerNorm and through the student's joint one, with a
    new stream of zeros beside them: what SCALE's separate LayerNorms keep."""
    from draw import draw_steps
    torch.manual_seed(0)
    x = torch.randn(12, 32)  # 12 tokens, 32 old coordinates
    x = x - x.mean(-1, keepdim=True)  # centred, as in check_4: the joint LayerNorm then only rescales
    alone = F.layer_norm(x, (32,), eps=1e-5)
    joint = m.joint_layer_norm(x, torch.zeros(12, 16), torch.ones(48), torch.zeros(48))[0]
    k = (joint * alone).sum().item() / (alone * alone).sum().item()  # the factor that fits best
    draw_steps([("one block's input", [("x: old stream\n(12 tokens x 32)", x), ("LN(x): SCALE's\nown LayerNorm", alone),
                                       (f"your joint LN, old part\n≈ {k:.3f} × LN(x)", joint),
                                       ("joint − own", joint - alone)])], path,
               "exercise 4: the old coordinates under one LayerNorm over [x ; 0]")


def draw_5(m, path):
    """The student's cloned head beside W, W.repeat and the reference clone, labelled from their numbers."""
    from draw import describe, draw_steps
    torch.manual_seed(0)
    W = torch.randn(24, 8, dtype=torch.float64)
    got = m.clone_head(W, 2)
    labels = " | ".join(describe(half, W) for half in got.chunk(2, dim=1))
    draw_steps([("the head", [("W (vocab x width)", W), (f"your clone_head(W, 2): {labels}", got),
                              ("W.repeat(1, 2): W | W", W.repeat(1, 2))])], path,
               "exercise 5: a cloned head, each half labelled from its numbers")


DRAWN = {3: draw_3, 4: draw_4, 5: draw_5}  # the exercises that break preservation on purpose
