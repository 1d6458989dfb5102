"""What the API does for a request, one function per use case: the routes only route, and call these.

Async; the database work of each runs in the thread pool, in as few trips as it needs, and ends its read
transaction before awaiting Temporal, so that no request holds a pooled connection while it waits.
"""
