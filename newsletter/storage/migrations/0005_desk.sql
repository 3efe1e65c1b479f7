-- The editors' desk (data/desk.sqlite's tables): staff accounts, their sessions, the audit log of every
-- desk action, and each edition's plan (order, pinned lead, stories left out, subject, preheader).

CREATE TABLE desk_users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('editor', 'admin')),
    password   TEXT NOT NULL DEFAULT '',   -- an Argon2id hash, or '' (single sign-on only)
    language   TEXT NOT NULL DEFAULT '',
    active     INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE desk_sessions (
    id_hash    TEXT PRIMARY KEY,           -- SHA-256 of the cookie's value, never the value
    user_name  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    seen_at    DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    via        TEXT NOT NULL DEFAULT 'password'
);
CREATE INDEX desk_sessions_user ON desk_sessions (user_name);

CREATE TABLE desk_audit (
    id         BIGSERIAL PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '',
    newsletter TEXT NOT NULL DEFAULT ''
);
CREATE INDEX desk_audit_at ON desk_audit (at);

CREATE TABLE desk_plans (
    newsletter TEXT NOT NULL,
    edition    TEXT NOT NULL,
    language   TEXT NOT NULL,
    plan       TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (newsletter, edition, language)
);
