"""Gateway business logic, called by the thin gRPC handlers in
console/gateway/server.py and by the Celery tasks in console/gateway/tasks.py.
Everything here is synchronous Django ORM code; the async server runs it in a
thread pool."""
