"""Output: where closed windows go and how they come back. The sink writes each table as Arrow
IPC or Parquet files, hive-partitioned by UTC hour, atomically and exactly once (`sink`;
docs/output-files.md); `combine` merges the partial rows of several instances exactly
(docs/scale-out.md); `text` renders tables for the terminal.
"""
