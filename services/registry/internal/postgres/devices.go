package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// deviceColumns are the columns scanDevice reads, in its order.
const deviceColumns = `id, name, type, groups, labels, attributes, enabled, secret_hash, created_at, updated_at, version`

// scanDevice reads a row of deviceColumns (prefixed or not).
func scanDevice(row pgx.CollectableRow) (device.Device, error) {
	var d device.Device
	err := row.Scan(&d.ID, &d.Name, &d.Type, &d.Groups, &d.Labels, &d.Attributes, &d.Enabled, &d.SecretHash,
		&d.CreatedAt, &d.UpdatedAt, &d.Version)
	if err != nil {
		return device.Device{}, err
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	d.Normalize()
	return d, nil
}

// deviceArgs are d's values for the columns of deviceColumns. Empty
// collections are stored as '{}', never NULL.
func deviceArgs(d *device.Device) []any {
	return []any{d.ID, d.Name, d.Type, nonNil(d.Groups), object(d.Labels), object(d.Attributes), d.Enabled, d.SecretHash,
		d.CreatedAt, d.UpdatedAt, d.Version}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// object returns m, or an empty map for nil (which would be JSON null).
func object(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// CreateDevice stores a new device.
func (s *Store) CreateDevice(ctx context.Context, d device.Device) (device.Device, error) {
	err := s.write(ctx, func(ctx context.Context, w *writer) error {
		var err error
		if d, err = device.NewDevice(d, w.now); err != nil {
			return err
		}
		// A taken id is reported before missing groups, as memstore does.
		var taken bool
		if err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM devices WHERE id = $1)`, d.ID).Scan(&taken); err != nil {
			return dbError(ctx, "read device", err)
		}
		if taken {
			return alreadyExists("device", d.ID)
		}
		if err := requireGroups(ctx, w.tx, "", d.Groups); err != nil {
			return err
		}
		tag, err := w.tx.Exec(ctx, `INSERT INTO devices (`+deviceColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (id) DO NOTHING`, deviceArgs(&d)...)
		if err != nil {
			return dbError(ctx, "insert device", err)
		}
		if tag.RowsAffected() == 0 {
			return alreadyExists("device", d.ID)
		}
		w.change(deviceChange(device.DeviceCreated, d))
		return nil
	})
	if err != nil {
		return device.Device{}, err
	}
	return d.Clone(), nil
}

// GetDevice returns the device with id.
func (s *Store) GetDevice(ctx context.Context, id string) (device.Device, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1`, id)
	d, err := pgx.CollectExactlyOneRow(rows, scanDevice)
	switch {
	case isNoRows(err):
		return device.Device{}, notFound("device", id)
	case err != nil:
		return device.Device{}, dbError(ctx, "get device", err)
	}
	return d, nil
}

// lockDevice reads the device with id and locks its row until the
// transaction ends.
func lockDevice(ctx context.Context, tx pgx.Tx, id string) (device.Device, error) {
	rows, _ := tx.Query(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = $1 FOR UPDATE`, id)
	d, err := pgx.CollectExactlyOneRow(rows, scanDevice)
	switch {
	case isNoRows(err):
		return device.Device{}, notFound("device", id)
	case err != nil:
		return device.Device{}, dbError(ctx, "read device", err)
	}
	return d, nil
}

// UpdateDevice applies mutate to the device with id.
func (s *Store) UpdateDevice(ctx context.Context, id string, mutate func(*device.Device) error, expectVersion int64) (device.Device, error) {
	var next device.Device
	err := s.write(ctx, func(ctx context.Context, w *writer) error {
		cur, err := lockDevice(ctx, w.tx, id)
		if err != nil {
			return err
		}
		if err := device.CheckVersion("device", id, cur.Version, expectVersion); err != nil {
			return err
		}
		if next, err = device.UpdatedDevice(cur, mutate, w.now); err != nil {
			return err
		}
		return replaceDevice(ctx, w, cur, next)
	})
	if err != nil {
		return device.Device{}, err
	}
	return next.Clone(), nil
}

// SetDeviceSecret replaces the device's secret hash.
func (s *Store) SetDeviceSecret(ctx context.Context, id string, hash []byte) (device.Device, error) {
	return s.UpdateDevice(ctx, id, func(d *device.Device) error {
		d.SecretHash = hash
		return nil
	}, 0)
}

// replaceDevice writes next over cur (locked by the caller), checking that
// the groups it joins exist.
func replaceDevice(ctx context.Context, w *writer, cur, next device.Device) error {
	var joined []string
	for _, g := range next.Groups {
		if !cur.InGroup(g) {
			joined = append(joined, g)
		}
	}
	if err := requireGroups(ctx, w.tx, "", joined); err != nil {
		return err
	}
	_, err := w.tx.Exec(ctx, `UPDATE devices SET
			name = $2, type = $3, groups = $4, labels = $5, attributes = $6, enabled = $7, secret_hash = $8,
			updated_at = $9, version = $10
		WHERE id = $1`,
		next.ID, next.Name, next.Type, nonNil(next.Groups), object(next.Labels), object(next.Attributes), next.Enabled,
		next.SecretHash, next.UpdatedAt, next.Version)
	if err != nil {
		return dbError(ctx, "update device", err)
	}
	w.change(deviceChange(device.DeviceUpdated, next))
	return nil
}

// DeleteDevice removes the device with id.
func (s *Store) DeleteDevice(ctx context.Context, id string, expectVersion int64) error {
	return s.write(ctx, func(ctx context.Context, w *writer) error {
		var version int64
		err := w.tx.QueryRow(ctx, `SELECT version FROM devices WHERE id = $1 FOR UPDATE`, id).Scan(&version)
		switch {
		case isNoRows(err):
			return notFound("device", id)
		case err != nil:
			return dbError(ctx, "read device", err)
		}
		if err := device.CheckVersion("device", id, version, expectVersion); err != nil {
			return err
		}
		// Its rows of device_groups go by ON DELETE CASCADE.
		if _, err := w.tx.Exec(ctx, `DELETE FROM devices WHERE id = $1`, id); err != nil {
			return dbError(ctx, "delete device", err)
		}
		w.change(device.Change{Kind: device.DeviceDeleted, ID: id, Version: version, At: w.now})
		return nil
	})
}

// deviceChange returns the change that leaves d as it is now.
func deviceChange(kind device.ChangeKind, d device.Device) device.Change {
	d = d.Clone()
	return device.Change{Kind: kind, ID: d.ID, Version: d.Version, At: d.UpdatedAt, Device: &d}
}

// requireGroups returns MissingGroupsError (field prefix+"groups") unless
// every group in ids exists. Existing groups are locked against deletion
// until the transaction ends (writers take turns anyway; this keeps the
// rule even for a writer that does not).
func requireGroups(ctx context.Context, tx pgx.Tx, prefix string, ids []string) error {
	missing, err := missingGroups(ctx, tx, ids)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return device.MissingGroupsError(prefix, missing)
	}
	return nil
}

// missingGroups returns the ids, sorted, of the groups in ids that do not
// exist.
func missingGroups(ctx context.Context, tx pgx.Tx, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, _ := tx.Query(ctx, `SELECT id FROM groups WHERE id = ANY($1) FOR KEY SHARE`, ids)
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError(ctx, "read groups", err)
	}
	exists := make(map[string]bool, len(found))
	for _, id := range found {
		exists[id] = true
	}
	var missing []string
	for _, id := range ids {
		if !exists[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return slices.Compact(missing), nil
}

// UpsertDevices creates or replaces a batch of devices in one transaction.
//
// The batch is copied (COPY) into a temporary table and merged into devices
// with one INSERT ... ON CONFLICT DO UPDATE; the triggers on devices then
// update memberships for the whole statement at once. 10,000 devices take
// a fraction of a second.
func (s *Store) UpsertDevices(ctx context.Context, devices []device.Device) (created, updated int, err error) {
	batch, err := device.PrepareUpsert(devices)
	if err != nil || len(batch) == 0 {
		return 0, 0, err
	}
	err = s.write(ctx, func(ctx context.Context, w *writer) error {
		if err := requireBatchGroups(ctx, w.tx, batch); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, `CREATE TEMPORARY TABLE upsert_devices (
				id text COLLATE "C", name text, type text, groups text[] COLLATE "C",
				labels jsonb, attributes jsonb, enabled boolean, secret_hash bytea
			) ON COMMIT DROP`); err != nil {
			return dbError(ctx, "create staging table", err)
		}
		_, err := w.tx.CopyFrom(ctx, pgx.Identifier{"upsert_devices"},
			[]string{"id", "name", "type", "groups", "labels", "attributes", "enabled", "secret_hash"},
			pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
				d := &batch[i]
				return []any{d.ID, d.Name, d.Type, nonNil(d.Groups), object(d.Labels), object(d.Attributes), d.Enabled, d.SecretHash}, nil
			}))
		if err != nil {
			return dbError(ctx, "copy the batch", err)
		}
		// A new device is created at now with version 1; an existing one
		// keeps CreatedAt, and its secret when the batch has none.
		rows, err := w.tx.Query(ctx, `
			INSERT INTO devices AS d (`+deviceColumns+`)
			SELECT id, name, type, groups, labels, attributes, enabled, secret_hash, $1, $1, 1
			FROM upsert_devices ORDER BY id
			ON CONFLICT (id) DO UPDATE SET
				name = excluded.name, type = excluded.type, groups = excluded.groups,
				labels = excluded.labels, attributes = excluded.attributes, enabled = excluded.enabled,
				secret_hash = coalesce(excluded.secret_hash, d.secret_hash),
				updated_at = greatest(excluded.updated_at, d.updated_at),
				version = d.version + 1
			RETURNING id, secret_hash, created_at, updated_at, version`, w.now)
		if err != nil {
			return dbError(ctx, "upsert devices", err)
		}
		byID := make(map[string]*device.Device, len(batch))
		for i := range batch {
			byID[batch[i].ID] = &batch[i]
		}
		var (
			id                   string
			hash                 []byte
			createdAt, updatedAt time.Time
			version              int64
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &hash, &createdAt, &updatedAt, &version}, func() error {
			d := byID[id]
			d.SecretHash = hash
			d.CreatedAt, d.UpdatedAt, d.Version = createdAt.UTC(), updatedAt.UTC(), version
			d.Normalize()
			return nil
		})
		if err != nil {
			return dbError(ctx, "upsert devices", err)
		}
		for _, d := range batch {
			kind := device.DeviceUpdated
			if d.Version == 1 {
				kind = device.DeviceCreated
				created++
			} else {
				updated++
			}
			w.change(deviceChange(kind, d))
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return created, updated, nil
}

// requireBatchGroups returns one MissingGroupsError for the whole batch,
// naming each device ("devices[i].groups") that names a missing group.
func requireBatchGroups(ctx context.Context, tx pgx.Tx, batch []device.Device) error {
	var all []string
	for _, d := range batch {
		all = append(all, d.Groups...)
	}
	slices.Sort(all)
	missing, err := missingGroups(ctx, tx, slices.Compact(all))
	if err != nil || len(missing) == 0 {
		return err
	}
	verr := &device.ValidationError{Cause: device.ErrFailedPrecondition}
	for i, d := range batch {
		var mine []string
		for _, g := range d.Groups {
			if _, found := slices.BinarySearch(missing, g); found {
				mine = append(mine, g)
			}
		}
		if len(mine) > 0 {
			e := device.MissingGroupsError(fmt.Sprintf("devices[%d].", i), mine).(*device.ValidationError)
			verr.Violations = append(verr.Violations, e.Violations...)
			if len(verr.Violations) >= maxBatchViolations {
				break
			}
		}
	}
	return verr
}

// maxBatchViolations bounds the violations of a batch error, as
// device.PrepareUpsert does: enough for a person to start fixing the file.
const maxBatchViolations = 100
