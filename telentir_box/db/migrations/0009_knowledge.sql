-- Knowledge bases: named sets of documents (uploaded files and fetched links) whose
-- extracted text is cut into chunks and indexed by SQLite's full-text search (FTS5).

-- number: the base's block of chunk ids (see knowledge_chunks).
CREATE TABLE knowledge_bases (
    id          TEXT PRIMARY KEY,
    number      INTEGER NOT NULL UNIQUE CHECK (number > 0),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX knowledge_bases_by_user ON knowledge_bases (user_id, created_at);

-- Integer ids: the wire's document ids are numbers. user_id is repeated from the base so
-- the per-user byte quota is one indexed sum. text_bytes counts the extracted text the
-- box keeps (what the quota limits); size is the file or page as received.
CREATE TABLE knowledge_documents (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    knowledge_base_id TEXT NOT NULL REFERENCES knowledge_bases (id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL,
    name              TEXT NOT NULL,
    type              TEXT NOT NULL CHECK (type IN ('text', 'markdown', 'html', 'pdf', 'docx')),
    source            TEXT NOT NULL CHECK (source IN ('file', 'link')),
    url               TEXT,
    size              INTEGER NOT NULL CHECK (size >= 0),
    text_bytes        INTEGER NOT NULL CHECK (text_bytes >= 0),
    chunks            INTEGER NOT NULL CHECK (chunks >= 0),
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX knowledge_documents_by_base ON knowledge_documents (knowledge_base_id, id);
CREATE INDEX knowledge_documents_by_user ON knowledge_documents (user_id);

-- The chunks themselves; the FTS5 index below reads their text (external content), and
-- the triggers keep it in step, also when a document or base is deleted by cascade.
-- A chunk's id is (base number << 32) + its place in the base, so one base's chunks
-- are one rowid range, which FTS5 restricts a match to without looking at other rows.
CREATE TABLE knowledge_chunks (
    id          INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    body        TEXT NOT NULL
) STRICT;
CREATE INDEX knowledge_chunks_by_document ON knowledge_chunks (document_id);

CREATE VIRTUAL TABLE knowledge_chunks_fts USING fts5 (
    body,
    content = 'knowledge_chunks',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER knowledge_chunks_indexed AFTER INSERT ON knowledge_chunks
BEGIN
    INSERT INTO knowledge_chunks_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER knowledge_chunks_unindexed AFTER DELETE ON knowledge_chunks
BEGIN
    INSERT INTO knowledge_chunks_fts (knowledge_chunks_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- How many chunks hold each indexed term: search leaves out words too common to rank.
CREATE VIRTUAL TABLE knowledge_chunks_terms USING fts5vocab (knowledge_chunks_fts, row);
