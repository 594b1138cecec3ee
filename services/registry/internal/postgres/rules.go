package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// ruleColumns are the columns scanRule reads, in its order.
const ruleColumns = `id, name, target_kind, target_id, field, operator, threshold, severity, hold_ns, cooldown_ns, enabled, created_at, updated_at, version`

func scanRule(row pgx.CollectableRow) (device.AlertRule, error) {
	var (
		r                        device.AlertRule
		kind, operator, severity string
		holdNS, cooldownNS       int64
	)
	err := row.Scan(&r.ID, &r.Name, &kind, &r.Target.ID, &r.Field, &operator, &r.Threshold, &severity,
		&holdNS, &cooldownNS, &r.Enabled, &r.CreatedAt, &r.UpdatedAt, &r.Version)
	if err != nil {
		return device.AlertRule{}, err
	}
	r.Target.Kind, r.Operator, r.Severity = device.TargetKind(kind), device.Operator(operator), device.Severity(severity)
	r.Hold, r.Cooldown = time.Duration(holdNS), time.Duration(cooldownNS)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, nil
}

// ruleArgs are r's values for the columns of ruleColumns.
func ruleArgs(r *device.AlertRule) []any {
	return []any{r.ID, r.Name, string(r.Target.Kind), r.Target.ID, r.Field, string(r.Operator), r.Threshold,
		string(r.Severity), int64(r.Hold), int64(r.Cooldown), r.Enabled, r.CreatedAt, r.UpdatedAt, r.Version}
}

// CreateRule stores a new alert rule.
func (s *Store) CreateRule(ctx context.Context, r device.AlertRule) (device.AlertRule, error) {
	err := s.write(ctx, func(ctx context.Context, w *writer) error {
		var err error
		if r, err = device.NewRule(r, w.now); err != nil {
			return err
		}
		tag, err := w.tx.Exec(ctx, `INSERT INTO alert_rules (`+ruleColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			ON CONFLICT (id) DO NOTHING`, ruleArgs(&r)...)
		if err != nil {
			return dbError(ctx, "insert rule", err)
		}
		if tag.RowsAffected() == 0 {
			return alreadyExists("rule", r.ID)
		}
		w.change(ruleChange(device.RuleCreated, r))
		return nil
	})
	if err != nil {
		return device.AlertRule{}, err
	}
	return r, nil
}

// GetRule returns the rule with id.
func (s *Store) GetRule(ctx context.Context, id string) (device.AlertRule, error) {
	return getRule(ctx, s.pool, id, "")
}

// getRule reads the rule with id; lock is "" or a locking clause.
func getRule(ctx context.Context, q querier, id, lock string) (device.AlertRule, error) {
	rows, _ := q.Query(ctx, `SELECT `+ruleColumns+` FROM alert_rules WHERE id = $1 `+lock, id)
	r, err := pgx.CollectExactlyOneRow(rows, scanRule)
	switch {
	case isNoRows(err):
		return device.AlertRule{}, notFound("rule", id)
	case err != nil:
		return device.AlertRule{}, dbError(ctx, "read rule", err)
	}
	return r, nil
}

// UpdateRule applies mutate to the rule with id.
func (s *Store) UpdateRule(ctx context.Context, id string, mutate func(*device.AlertRule) error, expectVersion int64) (device.AlertRule, error) {
	var next device.AlertRule
	err := s.write(ctx, func(ctx context.Context, w *writer) error {
		cur, err := getRule(ctx, w.tx, id, "FOR UPDATE")
		if err != nil {
			return err
		}
		if err := device.CheckVersion("rule", id, cur.Version, expectVersion); err != nil {
			return err
		}
		if next, err = device.UpdatedRule(cur, mutate, w.now); err != nil {
			return err
		}
		args := ruleArgs(&next)
		_, err = w.tx.Exec(ctx, `UPDATE alert_rules SET
				name = $2, target_kind = $3, target_id = $4, field = $5, operator = $6, threshold = $7,
				severity = $8, hold_ns = $9, cooldown_ns = $10, enabled = $11, updated_at = $12, version = $13
			WHERE id = $1`, append(args[:11:11], next.UpdatedAt, next.Version)...)
		if err != nil {
			return dbError(ctx, "update rule", err)
		}
		w.change(ruleChange(device.RuleUpdated, next))
		return nil
	})
	if err != nil {
		return device.AlertRule{}, err
	}
	return next, nil
}

// DeleteRule removes the rule with id.
func (s *Store) DeleteRule(ctx context.Context, id string, expectVersion int64) error {
	return s.write(ctx, func(ctx context.Context, w *writer) error {
		var version int64
		err := w.tx.QueryRow(ctx, `SELECT version FROM alert_rules WHERE id = $1 FOR UPDATE`, id).Scan(&version)
		switch {
		case isNoRows(err):
			return notFound("rule", id)
		case err != nil:
			return dbError(ctx, "read rule", err)
		}
		if err := device.CheckVersion("rule", id, version, expectVersion); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, `DELETE FROM alert_rules WHERE id = $1`, id); err != nil {
			return dbError(ctx, "delete rule", err)
		}
		w.change(device.Change{Kind: device.RuleDeleted, ID: id, Version: version, At: w.now})
		return nil
	})
}

// ruleChange returns the change that leaves r as it is now.
func ruleChange(kind device.ChangeKind, r device.AlertRule) device.Change {
	return device.Change{Kind: kind, ID: r.ID, Version: r.Version, At: r.UpdatedAt, Rule: &r}
}
