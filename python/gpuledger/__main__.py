"""`python -m gpuledger`: the same command line as the `gpuledger` script."""

from gpuledger.cli import main

main()
