"""
plumbing/ — what every script needs and no lesson is about: the ground floor.

    cli.py     one-line `error:` messages, the argument parser, run_cli(main)
    system.py  device, precision, CPU threads, the processes of a torchrun
    rundir.py  a training run's folder: where it starts, where it writes, what it may replace

Nothing here imports the model or the data: everything else may import this.
"""
