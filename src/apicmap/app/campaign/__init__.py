"""``apicmap campaign PLAN.toml``: a plan of kernels, jobs and seeds, run as shards on local processes
or a Dask cluster, with a shared example database and one merged report (docs/campaigns.md)."""
