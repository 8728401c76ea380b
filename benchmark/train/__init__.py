"""Training: one job's loop (``loop``) and the grid of jobs on an executor (``runner``)."""
