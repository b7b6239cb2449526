"""`python -m gpuledger.spark ...` (and `spark-submit .../gpuledger/spark/__main__.py ...`):
the `gpuledger spark-backfill` command."""

from gpuledger.cli.spark_backfill import spark_backfill_command

if __name__ == "__main__":
    spark_backfill_command(prog_name="python -m gpuledger.spark")
