package postgres

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// groupColumns are the columns scanGroup reads, in its order.
const groupColumns = `id, display_name, description, labels, member_count, created_at, updated_at, version`

func scanGroup(row pgx.CollectableRow) (device.Group, error) {
	var g device.Group
	if err := row.Scan(&g.ID, &g.DisplayName, &g.Description, &g.Labels, &g.MemberCount, &g.CreatedAt, &g.UpdatedAt, &g.Version); err != nil {
		return device.Group{}, err
	}
	g.CreatedAt, g.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
	g.Normalize()
	return g, nil
}

// CreateGroup stores a new group.
func (s *Store) CreateGroup(ctx context.Context, g device.Group) (device.Group, error) {
	err := s.write(ctx, func(ctx context.Context, w *writer) error {
		var err error
		if g, err = device.NewGroup(g, w.now); err != nil {
			return err
		}
		tag, err := w.tx.Exec(ctx, `INSERT INTO groups (id, display_name, description, labels, created_at, updated_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
			g.ID, g.DisplayName, g.Description, object(g.Labels), g.CreatedAt, g.UpdatedAt, g.Version)
		if err != nil {
			return dbError(ctx, "insert group", err)
		}
		if tag.RowsAffected() == 0 {
			return alreadyExists("group", g.ID)
		}
		w.change(groupChange(device.GroupCreated, g))
		return nil
	})
	if err != nil {
		return device.Group{}, err
	}
	return g.Clone(), nil
}

// GetGroup returns the group with id and its member count.
func (s *Store) GetGroup(ctx context.Context, id string) (device.Group, error) {
	return getGroup(ctx, s.pool, id, "")
}

// getGroup reads the group with id; lock is "" or a locking clause.
func getGroup(ctx context.Context, q querier, id, lock string) (device.Group, error) {
	rows, _ := q.Query(ctx, `SELECT `+groupColumns+` FROM groups WHERE id = $1 `+lock, id)
	g, err := pgx.CollectExactlyOneRow(rows, scanGroup)
	switch {
	case isNoRows(err):
		return device.Group{}, notFound("group", id)
	case err != nil:
		return device.Group{}, dbError(ctx, "read group", err)
	}
	return g, nil
}

// UpdateGroup applies mutate to the group with id.
func (s *Store) UpdateGroup(ctx context.Context, id string, mutate func(*device.Group) error, expectVersion int64) (device.Group, error) {
	var next device.Group
	err := s.write(ctx, func(ctx context.Context, w *writer) error {
		cur, err := getGroup(ctx, w.tx, id, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if err := device.CheckVersion("group", id, cur.Version, expectVersion); err != nil {
			return err
		}
		if next, err = device.UpdatedGroup(cur, mutate, w.now); err != nil {
			return err
		}
		_, err = w.tx.Exec(ctx, `UPDATE groups SET display_name = $2, description = $3, labels = $4, updated_at = $5, version = $6
			WHERE id = $1`, id, next.DisplayName, next.Description, object(next.Labels), next.UpdatedAt, next.Version)
		if err != nil {
			return dbError(ctx, "update group", err)
		}
		w.change(groupChange(device.GroupUpdated, next))
		return nil
	})
	if err != nil {
		return device.Group{}, err
	}
	return next.Clone(), nil
}

// DeleteGroup removes the group with id; with force, its members leave it
// first.
func (s *Store) DeleteGroup(ctx context.Context, id string, force bool) error {
	return s.write(ctx, func(ctx context.Context, w *writer) error {
		g, err := getGroup(ctx, w.tx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		if g.MemberCount > 0 && !force {
			return device.GroupHasMembersError(id, g.MemberCount)
		}
		if g.MemberCount > 0 {
			// The trigger on devices removes the memberships.
			rows, _ := w.tx.Query(ctx, `
				UPDATE devices SET groups = array_remove(groups, $1), updated_at = greatest($2, updated_at), version = version + 1
				WHERE id IN (SELECT device_id FROM device_groups WHERE group_id = $1)
				RETURNING `+deviceColumns, id, w.now)
			members, err := pgx.CollectRows(rows, scanDevice)
			if err != nil {
				return dbError(ctx, "remove the group's members", err)
			}
			slices.SortFunc(members, func(a, b device.Device) int { return strings.Compare(a.ID, b.ID) })
			for _, d := range members {
				w.change(deviceChange(device.DeviceUpdated, d))
			}
		}
		if _, err := w.tx.Exec(ctx, `DELETE FROM groups WHERE id = $1`, id); err != nil {
			return dbError(ctx, "delete group", err)
		}
		w.change(device.Change{Kind: device.GroupDeleted, ID: id, Version: g.Version, At: w.now})
		return nil
	})
}

// groupChange returns the change that leaves g as it is now.
func groupChange(kind device.ChangeKind, g device.Group) device.Change {
	g = g.Clone()
	return device.Change{Kind: kind, ID: g.ID, Version: g.Version, At: g.UpdatedAt, Group: &g}
}
