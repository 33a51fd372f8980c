"""
sample.py — let any checkpoint of the project write text.

Place in the story: after each stage (pretrained, grown, continued, merged) you
can look at what the model writes, not only at its loss. A grown model writes
exactly what its base wrote: try --temperature=0 on both.

    python sample.py                                   # out/base/ckpt.pt, prompt "\\n"
    python sample.py --ckpt=out/continued-upscaled/ckpt.pt --prompt="파일" --tokens=200
"""


import torch

from data.tokenizers import get_tokenizer
from checkpoint import check_finite, load_checkpoint, model_from_checkpoint
from plumbing.cli import UserError, check_number, parse_flags, parser, run_cli
from plumbing.system import resolve_device, set_threads


def sample_text(model, tokenizer, prompt, n_tokens, temperature=0.8, top_k=200, seed=0, device="cpu"):
    """Encode prompt, generate n_tokens with the model, decode prompt + continuation."""
    enc = get_tokenizer(tokenizer)
    ids = enc.encode_ordinary(prompt)
    if not ids:
        raise UserError("the prompt is empty")
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)  # its own stream: sampling never disturbs training
    model.eval()
    out = model.generate(idx, n_tokens, temperature=temperature, top_k=top_k, generator=gen)
    return enc.decode(out[0].tolist())


def main(argv=None):
    p = parser("sample.py", "Sample text from a checkpoint.")
    p.add_argument("--ckpt", default="out/base/ckpt.pt", help="any checkpoint this project wrote")
    p.add_argument("--prompt", default="\n", help="text to continue")
    p.add_argument("--tokens", type=int, default=300, help="tokens to generate")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda | mps | auto")
    p.add_argument("--threads", default="auto", help="CPU threads: auto (the cores not busy) or a number")
    args = parse_flags(p, argv)
    set_threads(args.threads)
    for name in ("tokens", "num_samples", "top_k"):
        check_number(name, getattr(args, name), 1)
    check_number("temperature", args.temperature, 0)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.ckpt)
    check_finite(ckpt["model"], args.ckpt)
    model = model_from_checkpoint(ckpt, args.ckpt).to(device)
    for i in range(args.num_samples):
        print(sample_text(model, ckpt["tokenizer"], args.prompt, args.tokens, args.temperature,
                          args.top_k, args.seed + i, device))
        print("---------------")


if __name__ == "__main__":
    run_cli(main)
