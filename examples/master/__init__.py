"""The reference master: job API, SQLite store and resource-aware scheduler.

Run it with ``python -m examples.master --port 8080 --db master.db``; build it in
code with :func:`examples.master.app.create_app`.
"""
