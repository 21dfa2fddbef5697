"""What a user runs: the offline and online pipelines, the refits and environment loop they share,
data collection, policy evaluation, the report of a run, sweeps and the replay demo. Pipelines
wire the parts to a run directory (synther_fast.runs); the parts never import them."""
