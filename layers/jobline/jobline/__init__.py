"""jobline: declared jobs, run from events on AWS, tracked in a run table."""
