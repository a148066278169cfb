"""The scores API: a Flask read service over the published Snowflake tables, for
product services (docs/api.md).

- `server.api_server(settings, warehouse_dir, ...)`: serve it (waitress) in a thread;
- `app.create_app(reads, tokens)`: the Flask app;
- `reads.PublishedReads`: its queries, complete days only;
- `pool.SessionPool`: the warehouse sessions its requests share.
"""
