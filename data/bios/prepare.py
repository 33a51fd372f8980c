"""
Synthetic biographies: SCALE's controlled test of remembering old facts while learning new ones.

Place in the story: a model first memorises the biographies of population A
(dataset `bios_a`), is grown, then continues on population B (`bios_b`, or
`bios_b_ko`, the same people written in Korean). Exact-match accuracy on A
after phase 2 is *retention* (stability); on B it is *acquisition*
(plasticity). Everything is generated from a fixed seed, so every run of this
script writes the same bytes.

Each person has six attributes; each biography renders all six with a template
chosen at random per attribute (three per attribute and language), sentences in
random order, several renderings per person. `val.bin` holds other renderings
of the same people (the facts are the same; only the wording and order differ).
`--seed` draws other people (experiment.py's confirmatory run uses its seed offset).

    python data/bios/prepare.py                 # 100 people in A, 100 in B, 5 renderings each
    python data/bios/prepare.py --people=50 --renderings=3
"""

import json
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.common import DATA_DIR, write_dataset  # noqa: E402
from plumbing.cli import UserError, parse_flags, parser, run_cli  # noqa: E402

FIRST = ["Ana", "Ben", "Cara", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ida", "Jon", "Kai", "Lea", "Max", "Nia", "Otto",
         "Pia", "Rex", "Sia", "Tom", "Uma", "Vic", "Wen", "Xia", "Yul", "Zoe", "Abe", "Bea", "Cy", "Dee", "Eli"]
LAST = ["Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim", "Han", "Oh", "Seo", "Shin", "Kwon",
        "Hwang", "Ahn", "Song", "Ryu", "Hong", "Baek", "Nam", "Noh", "Moon", "Yang", "Ko", "Bae", "Jeon", "Son", "Heo"]
CITIES = ["Seoul", "Busan", "Paris", "Lima", "Oslo", "Rome", "Cairo", "Tokyo", "Dublin", "Quito", "Perth", "Miami",
          "Delhi", "Lagos", "Hanoi", "Porto", "Bern", "Riga", "Kyiv", "Doha"]
VALUES = {
    "birth_city": CITIES,
    "university": ["MIT", "KAIST", "Oxford", "Yale", "ETH", "UCLA", "SNU", "Kyoto", "McGill", "Duke", "Rice", "Brown",
                   "Penn", "Tufts", "NYU"],
    "major": ["math", "law", "art", "music", "physics", "biology", "history", "chemistry", "economics", "medicine",
              "drama", "geology", "nursing", "poetry", "statistics"],
    "employer": ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne",
                 "Soylent", "Wonka", "Gekko", "Monarch", "Oscorp", "Aperture", "Massive", "Pied", "Nakatomi"],
    "employer_city": CITIES,
}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ATTRIBUTES = ["birth_date", "birth_city", "university", "major", "employer", "employer_city"]
# Three templates per attribute and language; the first is also the question asked at test time.
# Short sentences: fewer bytes per fact means fewer steps to memorise it.
TEMPLATES = {
    "en": {
        "birth_date": ["{n} was born on {v}.", "{n}'s birthday is {v}.", "{n} came into the world on {v}."],
        "birth_city": ["{n} was born in {v}.", "{n} is a native of {v}.", "{n} spent childhood in {v}."],
        "university": ["{n} studied at {v}.", "{n} graduated from {v}.", "{n} is an alumnus of {v}."],
        "major": ["{n} majored in {v}.", "{n} holds a degree in {v}.", "{n} chose to study {v}."],
        "employer": ["{n} works for {v}.", "{n} is employed by {v}.", "{n} draws a salary from {v}."],
        "employer_city": ["{n} works in {v}.", "{n}'s office is in {v}.", "{n} commutes to {v}."],
    },
    "ko": {
        "birth_date": ["{n}의 생일은 {v}.", "{n}은 {v}에 태어났다.", "{n}의 출생일은 {v}."],
        "birth_city": ["{n}의 고향은 {v}.", "{n}은 {v}에서 태어났다.", "{n}은 {v} 출신이다."],
        "university": ["{n}의 모교는 {v}.", "{n}은 {v}를 졸업했다.", "{n}은 {v}에서 공부했다."],
        "major": ["{n}의 전공은 {v}.", "{n}은 {v}를 전공했다.", "{n}은 {v} 학위가 있다."],
        "employer": ["{n}의 회사는 {v}.", "{n}은 {v}에서 일한다.", "{n}은 {v} 직원이다."],
        "employer_city": ["{n}의 근무지는 {v}.", "{n}은 {v}로 출근한다.", "{n}의 사무실은 {v}에 있다."],
    },
}
SEED = 0


def make_people(n, rng, taken):
    """n people with distinct names and random attributes."""
    if n > len(FIRST) * len(LAST) - len(taken):
        raise UserError(f"--people={n} per population: the generator has {len(FIRST) * len(LAST)} distinct names for "
                        f"both populations, so use at most {(len(FIRST) * len(LAST)) // 2}")
    people = []
    while len(people) < n:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name in taken:
            continue
        taken.add(name)
        person = {"name": name, "birth_date": f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1950, 1999)}"}
        person.update({a: rng.choice(VALUES[a]) for a in ATTRIBUTES[1:]})
        people.append(person)
    return people


def populations(n_people, seed=SEED):
    """Populations A and B: disjoint names, the same for a given n_people and seed on every machine."""
    rng, taken = random.Random(seed), set()
    return make_people(n_people, rng, taken), make_people(n_people, rng, taken)


def render(person, lang, rng):
    """One biography: every attribute once, each from a random template, in random order."""
    sentences = [rng.choice(TEMPLATES[lang][a]).format(n=person["name"], v=person[a]) for a in ATTRIBUTES]
    rng.shuffle(sentences)
    return " ".join(sentences)


def corpus(people, lang, renderings, seed):
    rng = random.Random(seed)
    docs = [render(p, lang, rng) for p in people for _ in range(renderings)]
    rng.shuffle(docs)
    return "\n".join(docs) + "\n"


def questions(people, lang="en"):
    """(prompt, answer) per person and attribute: the first template cut before the value."""
    out = []
    for p in people:
        for a in ATTRIBUTES:
            before, after = TEMPLATES[lang][a][0].split("{v}")
            out.append((before.format(n=p["name"]).rstrip(" "), " " + p[a] + after))
    return out


@torch.no_grad()
def exact_match(model, people, lang="en", device="cpu"):
    """Per-attribute share of facts the model completes exactly (greedy), as a list of 6 floats.

    Teacher forcing is enough: greedy decoding reproduces the answer exactly if
    and only if the argmax at every answer position is the answer's next byte,
    so one forward pass scores every question at once.
    """
    qa = [(list(q.encode()), list(a.encode())) for q, a in questions(people, lang)]
    T = max(len(q) + len(a) for q, a in qa)
    if T > model.config.block_size:
        raise UserError(f"questions are {T} bytes, longer than the model's block_size={model.config.block_size}: "
                        "use a model with a longer context")
    x = torch.zeros(len(qa), T, dtype=torch.long)
    for i, (q, a) in enumerate(qa):
        x[i, :len(q) + len(a)] = torch.tensor(q + a)
    model.eval()
    pred = torch.cat([model(x[i:i + 256].to(device))[0].argmax(-1).cpu() for i in range(0, len(qa), 256)])  # (N, T)
    correct = torch.tensor([bool((pred[i, len(q) - 1:len(q) + len(a) - 1] == x[i, len(q):len(q) + len(a)]).all())
                            for i, (q, a) in enumerate(qa)])
    return correct.view(len(people), len(ATTRIBUTES)).float().mean(0).tolist()


def dataset_names(n_people=100, renderings=5, seed=SEED):
    """bios_a, bios_b, bios_b_ko for the default sizes and seed; others get their own names, e.g. bios_a-n6k2,
    bios_a-s1000."""
    suffix = "" if (n_people, renderings) == (100, 5) else f"-n{n_people}k{renderings}"
    suffix += "" if seed == SEED else f"-s{seed}"
    return {key: f"bios_{key}{suffix}" for key in ("a", "b", "b_ko")}


def prepare(n_people=100, renderings=5, data_dir=DATA_DIR, seed=SEED):
    """Write population A, B (English) and B in Korean; val = 2 other renderings of the same people."""
    a, b = populations(n_people, seed)
    names = dataset_names(n_people, renderings, seed)
    for name, people, lang in ((names["a"], a, "en"), (names["b"], b, "en"), (names["b_ko"], b, "ko")):
        train, val = corpus(people, lang, renderings, seed=seed + 1), corpus(people, lang, 2, seed=seed + 2)
        source = f"synthetic bios n={n_people} k={renderings} seed={seed}"
        meta = write_dataset(name, train, "bytes", source, data_dir=data_dir, val_text=val)
        with open(os.path.join(data_dir, name, "people.json"), "w") as f:
            json.dump({"lang": lang, "people": people}, f, ensure_ascii=False)
        print(f"{os.path.join(data_dir, name)}: {len(people)} people x {renderings} renderings -> "
              f"{meta['train_tokens']:,} train and {meta['val_tokens']:,} val bytes")
    return names


def load_people(name, data_dir=DATA_DIR):
    with open(os.path.join(data_dir, name, "people.json")) as f:
        d = json.load(f)
    return d["people"], d["lang"]


def main():
    p = parser("data/bios/prepare.py", "Write the synthetic biography datasets bios_a, bios_b, bios_b_ko "
                                            "(named bios_a-n<people>k<renderings> etc. for other sizes).")
    p.add_argument("--people", type=int, default=100, help="people per population (A and B)")
    p.add_argument("--renderings", type=int, default=5, help="biographies per person in train.bin")
    p.add_argument("--data-dir", default=DATA_DIR, help="write <data-dir>/bios_*/")
    p.add_argument("--seed", type=int, default=SEED, help="draws the people and their renderings (not 0: "
                   "the datasets are named bios_a-s<seed> etc.)")
    args = parse_flags(p)
    if args.people < 1 or args.renderings < 1:
        raise UserError("--people and --renderings must be at least 1")
    prepare(args.people, args.renderings, args.data_dir, args.seed)


if __name__ == "__main__":
    run_cli(main)
