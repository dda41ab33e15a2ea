-- Migration 1 of Tessera's PostgreSQL schema: every table of the store.
-- Portable SQL only: plain tables, primary keys, secondary indexes, bytea and bigint. Values are bincode 1 with
-- the wire's options (DESIGN.md §4); ids are their raw bytes; unsigned numbers are non-negative bigints.
-- The first column of each primary key is the distribution key on a distributed engine (docs/deployment.md).

CREATE TABLE owners (
    id bytea PRIMARY KEY,
    rev bigint NOT NULL,
    value bytea NOT NULL
);

-- Sealed exchange data waiting for its recipient (protocol v2): no column names the sender.
CREATE TABLE inbox (
    recipient_id bytea NOT NULL,
    message_id bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (recipient_id, message_id)
);

CREATE TABLE key_bag (
    owner_id bytea NOT NULL,
    entry_id bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (owner_id, entry_id)
);

-- `value` is the entity with its `rev` field set to `rev`.
CREATE TABLE entities (
    id bytea PRIMARY KEY,
    rev bigint NOT NULL,
    value bytea NOT NULL
);

CREATE TABLE entities_by_delegation_key (
    delegation_key bytea NOT NULL,
    entity_id bytea NOT NULL,
    PRIMARY KEY (delegation_key, entity_id)
);

CREATE TABLE entities_by_search_tag (
    search_tag bytea NOT NULL,
    entity_id bytea NOT NULL,
    PRIMARY KEY (search_tag, entity_id)
);

-- The length of each finished attachment; its bytes are in attachment_chunks.
CREATE TABLE attachments (
    entity_id bytea NOT NULL,
    attachment_id bytea NOT NULL,
    len bigint NOT NULL,
    PRIMARY KEY (entity_id, attachment_id)
);

-- Chunk 0 is the stream header, chunk i >= 1 is encrypted segment i - 1 (tessera_store::attachment_chunk_len).
CREATE TABLE attachment_chunks (
    entity_id bytea NOT NULL,
    attachment_id bytea NOT NULL,
    chunk bigint NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (entity_id, attachment_id, chunk)
);

-- Chunks of unfinished uploads, which no read looks at.
CREATE TABLE attachment_staging (
    entity_id bytea NOT NULL,
    attachment_id bytea NOT NULL,
    chunk bigint NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (entity_id, attachment_id, chunk)
);

CREATE TABLE recovery_data (
    id bytea PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE side_map (
    owner_id bytea NOT NULL,
    delegation_key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (owner_id, delegation_key)
);
