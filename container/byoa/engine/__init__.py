"""The training engine: partitions of a job's data and the executor that runs every algorithm's reduction over them."""
