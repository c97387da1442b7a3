"""Entry point of the one-shot job: `python reconcile.py {validate,plan,apply,status,...}`."""

import sys

from ctpbackup.cli import main

if __name__ == "__main__":
    sys.exit(main())
