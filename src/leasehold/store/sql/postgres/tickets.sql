-- PostgreSQL overrides of sql/tickets.sql: row locks where SQLite relies on BEGIN IMMEDIATE.

-- name: lock_namespace
SELECT * FROM namespaces WHERE prefix = :prefix FOR UPDATE;

-- name: lock_reservation
SELECT * FROM reservations WHERE ticket_id = :ticket_id FOR UPDATE;
