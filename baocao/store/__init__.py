"""The database: schema, queries, status views and migrations glue.
"""
