"""`python -m minitf` and the installed `minitf` command.

Ctrl-C is caught first, before anything imports jax (which takes a second or two): from
then on one Ctrl-C at any moment asks training to stop at the next step boundary and
save (see `minitf.interrupts`), instead of landing somewhere inside jax's start-up.
"""

from minitf import faults, interrupts


def main() -> int:
    interrupts.catch_ctrl_c()
    faults.point("cli-start")  # tests interrupt here, while jax is not yet loaded
    from minitf.cli import main as run  # imports jax

    return run()


if __name__ == "__main__":
    raise SystemExit(main())
