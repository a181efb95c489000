"""Data in: sources (files, FIFOs) -> framing -> formats -> numpy batches."""
