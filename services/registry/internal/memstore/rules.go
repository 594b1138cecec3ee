package memstore

import (
	"context"

	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// CreateRule implements device.Store.
func (s *Store) CreateRule(ctx context.Context, r device.AlertRule) (device.AlertRule, error) {
	if err := ctx.Err(); err != nil {
		return device.AlertRule{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := device.NewRule(r, s.now())
	if err != nil {
		return device.AlertRule{}, err
	}
	if _, ok := s.rules[r.ID]; ok {
		return device.AlertRule{}, alreadyExists("alert rule", r.ID)
	}
	r.CreatedAt = s.clock()
	r.UpdatedAt = r.CreatedAt
	stored := &r
	s.rules[r.ID] = stored
	s.ruleIDs = insertSorted(s.ruleIDs, r.ID)
	s.appendChange(device.Change{Kind: device.RuleCreated, ID: r.ID, Version: 1, At: r.UpdatedAt, Rule: stored})
	return r, nil
}

// GetRule implements device.Store.
func (s *Store) GetRule(ctx context.Context, id string) (device.AlertRule, error) {
	if err := ctx.Err(); err != nil {
		return device.AlertRule{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.rules[id]
	if !ok {
		return device.AlertRule{}, notFound("alert rule", id)
	}
	return *r, nil
}

// UpdateRule implements device.Store.
func (s *Store) UpdateRule(ctx context.Context, id string, mutate func(*device.AlertRule) error, expectVersion int64) (device.AlertRule, error) {
	if err := ctx.Err(); err != nil {
		return device.AlertRule{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.rules[id]
	if !ok {
		return device.AlertRule{}, notFound("alert rule", id)
	}
	if err := device.CheckVersion("alert rule", id, cur.Version, expectVersion); err != nil {
		return device.AlertRule{}, err
	}
	next, err := device.UpdatedRule(*cur, mutate, s.now())
	if err != nil {
		return device.AlertRule{}, err
	}
	next.UpdatedAt = s.clock()
	stored := &next
	s.rules[id] = stored
	s.appendChange(device.Change{Kind: device.RuleUpdated, ID: id, Version: next.Version, At: next.UpdatedAt, Rule: stored})
	return next, nil
}

// DeleteRule implements device.Store.
func (s *Store) DeleteRule(ctx context.Context, id string, expectVersion int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.rules[id]
	if !ok {
		return notFound("alert rule", id)
	}
	if err := device.CheckVersion("alert rule", id, cur.Version, expectVersion); err != nil {
		return err
	}
	delete(s.rules, id)
	s.ruleIDs = removeSorted(s.ruleIDs, id)
	s.appendChange(device.Change{Kind: device.RuleDeleted, ID: id, Version: cur.Version, At: s.clock()})
	return nil
}

// ListRules implements device.Store.
func (s *Store) ListRules(ctx context.Context, q device.RuleQuery) (device.RulePage, error) {
	if err := ctx.Err(); err != nil {
		return device.RulePage{}, err
	}
	cur, err := q.Cursor()
	if err != nil {
		return device.RulePage{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var page device.RulePage
	start := after(s.ruleIDs, cur.After)
	for i, id := range s.ruleIDs {
		r := s.rules[id]
		if !q.Matches(r) {
			continue
		}
		page.TotalSize++
		if i < start || page.NextPageToken != "" {
			continue
		}
		if len(page.Rules) == cur.Size {
			page.NextPageToken = cur.Next(page.Rules[len(page.Rules)-1].ID)
			continue
		}
		page.Rules = append(page.Rules, *r)
	}
	return page, nil
}
