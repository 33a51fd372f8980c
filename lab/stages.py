"""
stages.py — experiment.py's stages: each command run once, cached, and side by side where it can be.

Place in the story: the machinery under experiment.py. A stage is one ordinary
command of this project (train.py, scale.py, merge.py); <out>/stages.json
remembers which output each command made, so a re-run skips what is done and
an interrupted training stage resumes. Stages queue up and run in one pool as
soon as what they start from exists: training stages `jobs` at a time, each as
its own `python train.py` with its own threads; a grow step (scale.py, under a
second) in this process between them.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import train
from checkpoint import load_checkpoint
from plumbing.cli import UserError
from plumbing.system import autodetect_device, choose_threads

TRAIN_PY = os.path.abspath(train.__file__)  # the subprocesses run the same train.py


def jobs_and_threads(jobs, threads):
    """How many training stages run at once, and with how many CPU threads each. By default a CPU runs
    one stage per free core with one thread each: two 1-thread trainings side by side do 1.16x the
    tokens of one 2-thread training on a 2-core laptop (README, Performance), and every stage's result
    is then the same on any machine and under any load. A GPU runs one stage at a time."""
    for name, value in (("jobs", jobs), ("threads", threads)):
        if value != "auto" and not (value.isdigit() and 1 <= int(value) <= 256):
            raise UserError(f"--{name}={value} must be auto or a whole number from 1 to 256")
    free = choose_threads("auto")[0] if "auto" in (jobs, threads) else None  # measures the load: only if needed
    if jobs == "auto":
        jobs = 1 if autodetect_device() != "cpu" else free
    jobs = int(jobs)
    return jobs, int(threads) if threads != "auto" else max(1, free // jobs)


class Stages:
    """Runs the experiment's commands and remembers, in <out>/stages.json, which output each made.

    Training stages and grow steps wait in a queue until `wait()`: then the training stages run one at
    a time in this process (jobs=1: progress bars as usual), or `jobs` at once as separate processes,
    each with its output in <out>/logs/ and one line here when it finishes. A stage that starts from
    another queued stage's output waits for it (next_stage); the others go longest first. A stage
    whose start is made again (a base trained with new settings) runs again too, though its own
    command is unchanged, so nothing downstream of a changed stage is kept. Every stage gets the same
    `--threads`, which is part of its command: a thread count changes floating-point sums, and the
    same command gives the same weights bit for bit however many stages run beside it."""

    def __init__(self, out_dir, jobs=1, threads=1):
        self.out_dir, self.path = out_dir, os.path.join(out_dir, "stages.json")
        self.done = json.load(open(self.path)) if os.path.exists(self.path) else {}
        self.jobs, self.threads, self.queue = jobs, threads, []

    def _record(self, output, cmd, seconds, group, finished=True, start=None):
        """Remember that `cmd` made `output`, from `start` (version() of what it started from; None: as before)."""
        before = self.done.get(output, {})
        self.done[output] = {"cmd": cmd, "seconds": round(seconds, 1), "group": group, "finished": finished,
                             "from": before.get("from", {}) if start is None else start}
        os.makedirs(self.out_dir, exist_ok=True)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.done, f, indent=1)
        os.replace(self.path + ".tmp", self.path)

    def _made(self, output, made, cmd, inputs):
        """Did `cmd` make `output` (the file `made`), from the very `inputs` there are now?"""
        before = self.done.get(output, {})
        return (before.get("cmd") == cmd and before.get("finished", True) and os.path.exists(made)
                and before.get("from", {}) == version(inputs))

    def run(self, group, script, argv, output, inputs=()):
        """`python script argv...` now, unless `output` exists and was made by that very command from the
        very `inputs` there are now (a merge of Korean runs trained again is made again)."""
        cmd = " ".join(["python", script.__name__ + ".py"] + argv)
        if self._made(output, output, cmd, inputs):
            return
        print(f"\n$ {cmd}", flush=True)
        t0, start = time.time(), version(inputs)
        script.main(argv)
        self._record(output, cmd, time.time() - t0, group, start=start)

    def step(self, group, script, argv, output):
        """Queue a quick `python script argv...` (a grow) that makes `output` from its --in=; returns `output`.
        It runs in this process as soon as its input exists, unless that very command made `output`."""
        cmd = " ".join(["python", script.__name__ + ".py"] + argv)
        stage = dict(group=group, out=output, argv=argv, iters=0, cmd=cmd, script=script)
        self._queue(stage, self._made(output, output, cmd, [needs(stage)]))
        return output

    def train(self, group, out_dir, argv, iters):
        """Queue train.py into out_dir (skipped if that command finished there); returns its checkpoint."""
        argv = argv + [f"--out-dir={out_dir}", f"--max-iters={iters}", "--sample-tokens=0", f"--threads={self.threads}"]
        ckpt, cmd = os.path.join(out_dir, "ckpt.pt"), " ".join(["python train.py"] + argv)
        stage = dict(group=group, out=out_dir, argv=argv, iters=iters, cmd=cmd, script=None)
        self._queue(stage, self._made(out_dir, ckpt, cmd, [needs(stage)]))
        return ckpt

    def _queue(self, stage, done):
        """Queue a stage unless it is done from the start there is now. One whose start is itself queued is
        queued to start over (`again`): stages are queued after what they start from, so one pass sees it."""
        stage["again"] = needs(stage) in {makes(q) for q in self.queue}
        if not done or stage["again"]:
            self.queue.append(stage)

    def _start(self, stage):
        """(argv to run, seconds already spent): an interrupted run of the same command from the same start
        resumes; any other starts over."""
        group, out_dir, argv, cmd = (stage[k] for k in ("group", "out", "argv", "cmd"))
        before, start = self.done.get(out_dir, {}), version([needs(stage)])
        if before.get("cmd") == cmd and before.get("from", {}) == start and not stage["again"] and \
                os.path.exists(os.path.join(out_dir, "ckpt.pt")):
            print(f"\n$ python train.py --init-from=resume --out-dir={out_dir}   # continuing: {cmd}", flush=True)
            return ["--init-from=resume", f"--out-dir={out_dir}", "--sample-tokens=0"], before.get("seconds", 0)
        self._record(out_dir, cmd, 0, group, finished=False, start=start)  # a kill from here on resumes, never skips
        replace = ["--overwrite"] if os.path.exists(os.path.join(out_dir, "ckpt.pt")) else []  # settings changed
        print(f"\n$ {' '.join([cmd] + replace)}", flush=True)
        return argv + replace, 0

    def _finish(self, stage, seconds):
        """Record a training stage; True when it reached its last step."""
        finished = load_checkpoint(os.path.join(stage["out"], "ckpt.pt"))["iter_num"] >= stage["iters"]
        self._record(stage["out"], stage["cmd"], seconds, stage["group"], finished)
        return finished

    def _step(self, stage):
        """Run a queued quick step (a grow) here and now."""
        print(f"\n$ {stage['cmd']}", flush=True)
        t0, start = time.time(), version([needs(stage)])
        stage["script"].main(stage["argv"])
        self._record(stage["out"], stage["cmd"], time.time() - t0, stage["group"], start=start)

    def wait(self):
        """Run every queued stage."""
        queue, self.queue = self.queue, []
        if self.jobs == 1:
            while queue:
                stage = next_stage(queue, running=())
                if stage["script"]:
                    self._step(stage)
                    continue
                t0 = time.time()
                run_argv, spent = self._start(stage)
                train.main(run_argv)
                if not self._finish(stage, spent + time.time() - t0):
                    raise UserError("interrupted; run the same experiment.py command again to continue where it stopped")
        elif queue:
            self._pool(queue)

    def _pool(self, queue):
        """`jobs` stages at a time, each a `python train.py` of its own, its output in <out>/logs/."""
        logs = os.path.join(self.out_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        total, n_done = sum(not q["script"] for q in queue), 0
        print(f"\n{total} training stages, {self.jobs} at a time with {self.threads} thread(s) each; "
              f"their output goes to {logs}/", flush=True)
        running, failed = {}, None
        try:
            while queue or running:
                while queue and len(running) < self.jobs and not failed:
                    stage = next_stage(queue, [makes(r.stage) for r in running.values()])
                    if stage is None:  # every queued stage starts from a checkpoint still being trained
                        break
                    if stage["script"]:  # a grow: under a second, here, between the training stages
                        try:
                            self._step(stage)
                        except UserError as e:
                            failed = failed or f"{stage['out']}: {e}"
                        continue
                    run_argv, spent = self._start(stage)
                    log = os.path.join(logs, stage["out"][len(self.out_dir):].strip("/").replace("/", "_") + ".log")
                    with open(log, "a") as f:
                        proc = subprocess.Popen([sys.executable, TRAIN_PY, *run_argv], stdout=f, stderr=subprocess.STDOUT,
                                                env=dict(os.environ, TQDM_DISABLE="1"), start_new_session=True)
                    running[proc] = Running(stage, spent, time.time(), log)
                if failed and not running:
                    break
                time.sleep(0.2)
                for proc in [p for p in running if p.poll() is not None]:
                    r = running.pop(proc)
                    if proc.returncode != 0:
                        failed = failed or f"{r.stage['out']}: {last_line(r.log)} (its whole output: {r.log})"
                        continue
                    if not self._finish(r.stage, r.spent + time.time() - r.t0):
                        failed = failed or f"{r.stage['out']} stopped before its last step; run the same command again"
                        continue
                    n_done += 1
                    print(f"[{n_done}/{total}] {r.stage['out']} done in {(time.time() - r.t0) / 60:.1f} min "
                          f"({sum(not q['script'] for q in queue)} still to start)", flush=True)
        except KeyboardInterrupt:  # each running stage saves its step, as train.py does on Ctrl-C
            for proc in running:
                proc.send_signal(signal.SIGINT)
            for proc, r in running.items():
                proc.wait()
                if os.path.exists(makes(r.stage)):
                    self._finish(r.stage, r.spent + time.time() - r.t0)
            raise
        if failed:
            raise UserError(failed)


@dataclass
class Running:
    """A training stage running in a process of its own."""
    stage: dict   # as queued: group, out, iters, cmd, argv
    spent: float  # seconds it ran in earlier sessions (a resumed stage)
    t0: float     # when this session started it
    log: str      # where its output goes


def flag(argv, name):
    """The value of --name= in argv, or None."""
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)


def needs(stage):
    """The file a stage starts from: a training stage's --init-from, a grow's --in (None: from scratch)."""
    return flag(stage["argv"], "in" if stage["script"] else "init-from")


def makes(stage):
    """The file a stage makes: a training stage's checkpoint, a grow's --out."""
    return stage["out"] if stage["script"] else os.path.join(stage["out"], "ckpt.pt")


def version(paths):
    """{path: modification time in ns} of the files a stage starts from: a stage made from an older
    version of its start (a base trained again) is not done."""
    return {p: os.stat(p).st_mtime_ns for p in paths if p and os.path.exists(p)}


def next_stage(queue, running):
    """Take from the queue the stage to start next, or None if none can start yet (`running`: the files
    the running stages make).

    A stage can start once no queued or running stage is still making the file it starts from.
    Among those, stages that others wait for go first, then the longest: the pool then ends together."""
    making = {makes(q) for q in queue} | set(running)
    waited_for = {needs(q) for q in queue}
    ready = [q for q in queue if needs(q) not in making]
    if not ready:
        return None
    stage = max(ready, key=lambda q: (makes(q) in waited_for, q["iters"]))
    queue.remove(stage)
    return stage


def last_line(log):
    """The last line a stage printed (its `error:` line when it failed), without the prefix."""
    with open(log, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return (lines[-1] if lines else "no output").removeprefix("error: ")
