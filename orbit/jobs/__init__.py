"""Long admin actions as rows: a drain or a broadcast started from the bot is a `jobs`
row that a worker (the janitor's job loop, orbit/janitor/jobs.py) claims, so
restarting the bot never cuts it short. See orbit/jobs/queries.py for a job's life."""
