"""`python -m gpuledger.cli`: the same command line as `gpuledger`."""

from gpuledger.cli import main

main()
