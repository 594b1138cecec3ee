-- The registry's schema. Ids and names use COLLATE "C" so that ORDER BY id
-- is bytewise, as the Store contract requires whatever the database's
-- default collation, and so that plain btree indexes serve prefix LIKE.
--
-- devices.groups is the source of truth for membership; device_groups is
-- derived from it, groups.member_count from device_groups, and
-- device_total from devices, by the statement-level triggers below, so no
-- writer can let them drift.

-- +goose Up

-- The head of the change log: one row, locked first by every write
-- transaction of the store (SELECT ... FOR UPDATE). That serializes the
-- registry's writers, which is what makes change sequence numbers gap-free
-- and in commit order, and rules out deadlocks between writers. Registry
-- writes are operator edits and imports, not telemetry, so one at a time
-- is plenty.
CREATE TABLE change_log (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- Seq of the last committed change; 0 when there has been none.
    last_seq        bigint NOT NULL,
    -- Changes with seq <= dropped_through are no longer kept.
    dropped_through bigint NOT NULL
);
INSERT INTO change_log (last_seq, dropped_through) VALUES (0, 0);

-- One row per committed change to one object, with the object's state
-- right after it (NULL for a delete).
CREATE TABLE changes (
    -- Serves Changes (seq > $after ORDER BY seq LIMIT n) and trimming the
    -- oldest (seq <= $n).
    seq       bigint PRIMARY KEY,
    kind      text NOT NULL,
    object_id text NOT NULL,
    version   bigint NOT NULL,
    at        timestamptz NOT NULL,
    object    jsonb
);

CREATE TABLE groups (
    -- Serves GetGroup and ListGroups' keyset pages (id > $after ORDER BY id).
    id           text COLLATE "C" PRIMARY KEY,
    display_name text NOT NULL,
    description  text NOT NULL,
    labels       jsonb NOT NULL,
    -- Rows of device_groups for this group, kept by the triggers below so
    -- that reading a group, a page of groups, or the total of a group's
    -- members costs the same at 10 members as at 1M.
    member_count bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint NOT NULL
);

CREATE TABLE devices (
    -- Serves GetDevice and ListDevices' keyset pages without a group
    -- filter (id > $after ORDER BY id LIMIT n).
    id          text COLLATE "C" PRIMARY KEY,
    name        text COLLATE "C" NOT NULL,
    type        text NOT NULL,
    -- Sorted, distinct group ids (device.Normalize).
    groups      text[] COLLATE "C" NOT NULL,
    labels      jsonb NOT NULL,
    attributes  jsonb NOT NULL,
    enabled     boolean NOT NULL,
    secret_hash bytea,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL
);

-- Serves label selectors: site=a and site in (a,b) become
-- labels @> '{"site":"a"}' (OR-ed for in), which this index finds.
-- jsonb_path_ops is smaller and more precise than the default
-- jsonb_ops but cannot answer "has key" (labels ? 'site'), so site and
-- !site requirements filter rows found through another index.
CREATE INDEX devices_labels ON devices USING gin (labels jsonb_path_ops);

-- Serves the name-prefix filter: name LIKE 'abc%' becomes the range
-- name >= 'abc' AND name < 'abd' on this index (its collation is "C").
CREATE INDEX devices_name ON devices (name);

-- Serves ListDevices with enabled=false: a keyset walk over the few
-- disabled devices instead of all of them.
CREATE INDEX devices_disabled ON devices (id) WHERE NOT enabled;

-- The number of devices, kept by the triggers below, so that listing all
-- devices reads its total instead of counting a million rows.
CREATE TABLE device_total (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    devices   bigint NOT NULL
);
INSERT INTO device_total (devices) VALUES (0);

-- Group membership, one row per (group, device), derived from
-- devices.groups by triggers.
CREATE TABLE device_groups (
    group_id  text COLLATE "C" NOT NULL REFERENCES groups (id),
    device_id text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- Serves a group's devices in id order from a keyset (group_id = $g
    -- AND device_id > $after ORDER BY device_id LIMIT n), for
    -- ListGroupMembers and ListDevices with a group filter, and the
    -- members of a group to remove when it is deleted with force.
    PRIMARY KEY (group_id, device_id)
);

-- Serves the cascade when a device is deleted and the trigger that diffs
-- a device's groups on update (device_id = $id), and lets a large group's
-- devices be merged with devices in id order.
CREATE INDEX device_groups_device ON device_groups (device_id);

CREATE TABLE alert_rules (
    -- Serves GetRule and ListRules' keyset pages.
    id          text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    target_kind text NOT NULL,
    target_id   text COLLATE "C" NOT NULL,
    field       text NOT NULL,
    operator    text NOT NULL,
    threshold   double precision NOT NULL,
    severity    text NOT NULL,
    -- Durations in nanoseconds (Go's time.Duration), exact where an
    -- interval would round to microseconds.
    hold_ns     bigint NOT NULL,
    cooldown_ns bigint NOT NULL,
    enabled     boolean NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL
);

-- Serves ListRules filtered by target (target_id = $t AND id > $after
-- ORDER BY id), and later the rules that watch a device or group.
CREATE INDEX alert_rules_target ON alert_rules (target_id, id);

-- device_groups follows devices.groups, and device_total the number of
-- devices. Statement-level triggers with transition tables work on whole
-- statements, so a 100,000-device import costs a few set operations, not
-- 100,000 trigger calls.

-- +goose StatementBegin
CREATE FUNCTION devices_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_groups (group_id, device_id)
    SELECT g, d.id FROM new_devices d, unnest(d.groups) AS g;
    UPDATE device_total SET devices = devices + (SELECT count(*) FROM new_devices);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- A deleted device's rows of device_groups go by ON DELETE CASCADE.
-- +goose StatementBegin
CREATE FUNCTION devices_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE device_total SET devices = devices - (SELECT count(*) FROM old_devices);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION device_groups_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM device_groups m
    USING (
        SELECT d.id, g FROM old_devices d, unnest(d.groups) AS g
        EXCEPT
        SELECT d.id, g FROM new_devices d, unnest(d.groups) AS g
    ) AS gone (device_id, group_id)
    WHERE m.group_id = gone.group_id AND m.device_id = gone.device_id;

    INSERT INTO device_groups (group_id, device_id)
    SELECT group_id, device_id FROM (
        SELECT g, d.id FROM new_devices d, unnest(d.groups) AS g
        EXCEPT
        SELECT g, d.id FROM old_devices d, unnest(d.groups) AS g
    ) AS joined (group_id, device_id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER devices_insert AFTER INSERT ON devices
    REFERENCING NEW TABLE AS new_devices
    FOR EACH STATEMENT EXECUTE FUNCTION devices_after_insert();

CREATE TRIGGER devices_delete AFTER DELETE ON devices
    REFERENCING OLD TABLE AS old_devices
    FOR EACH STATEMENT EXECUTE FUNCTION devices_after_delete();

CREATE TRIGGER devices_update_groups AFTER UPDATE ON devices
    REFERENCING OLD TABLE AS old_devices NEW TABLE AS new_devices
    FOR EACH STATEMENT EXECUTE FUNCTION device_groups_after_update();

-- groups.member_count follows device_groups (whose rows are only ever
-- inserted and deleted, the deletes also by the cascade from devices).

-- +goose StatementBegin
CREATE FUNCTION member_count_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE groups SET member_count = member_count + n.count
    FROM (SELECT group_id, count(*) FROM new_members GROUP BY group_id) AS n
    WHERE groups.id = n.group_id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION member_count_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE groups SET member_count = member_count - o.count
    FROM (SELECT group_id, count(*) FROM old_members GROUP BY group_id) AS o
    WHERE groups.id = o.group_id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER device_groups_insert_count AFTER INSERT ON device_groups
    REFERENCING NEW TABLE AS new_members
    FOR EACH STATEMENT EXECUTE FUNCTION member_count_after_insert();

CREATE TRIGGER device_groups_delete_count AFTER DELETE ON device_groups
    REFERENCING OLD TABLE AS old_members
    FOR EACH STATEMENT EXECUTE FUNCTION member_count_after_delete();

-- +goose Down
DROP TABLE alert_rules, device_groups, devices, device_total, groups, changes, change_log;
DROP FUNCTION devices_after_insert(), devices_after_delete(), device_groups_after_update(),
    member_count_after_insert(), member_count_after_delete();
