"""`python -m leadscope.cli …` (how the tests start servers and deliverers as real processes)."""

from leadscope.cli import main

main()
