-- Risk scans (seed 004): what the AI service found in one submitted file or text, per user.
-- depends: 0003.audit_events
CREATE TABLE scans (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename    text CHECK (filename IS NULL OR length(filename) BETWEEN 1 AND 255),
    -- An array of {risk, category, context} objects, as the AI service returned them.
    data        jsonb NOT NULL CHECK (jsonb_typeof(data) = 'array'),
    source      text NOT NULL CHECK (source IN ('llm', 'model')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Leads with user_id, so it also serves every per-user lookup and the cascade from users;
-- its (created_at, id) order gives the newest-first listing and its keyset cursor without a sort.
CREATE INDEX scans_user_created_idx ON scans (user_id, created_at DESC, id DESC);
