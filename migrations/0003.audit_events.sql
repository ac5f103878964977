-- Security and admin events, written in the same transaction as the change they record.
-- depends: 0002.auth_sessions
CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_email  text,
    action       text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    target_type  text,
    target_id    text,
    ip           text,
    user_agent   text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_at_idx ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_action_at_idx ON audit_events (action, at DESC);
CREATE INDEX audit_events_actor_at_idx ON audit_events (actor_id, at DESC);
