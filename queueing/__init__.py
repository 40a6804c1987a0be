"""The queue side, shared by the API and the workers: enqueueing a session's processing job
(``jobs``) and delivering its webhook events (``webhooks``). Redis only carries the work;
Postgres stays the source of truth."""
